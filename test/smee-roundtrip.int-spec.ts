import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GosmeeLikeClient } from './fixtures/gosmee-like-client';
import { SmeeChannelServer } from './fixtures/smee-channel-server';
import { RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';
import { SmeeClientProcess } from './support/smee-client-process';
import { waitFor } from './support/wait-for';

/**
 * The end-to-end health check and the relay through a smee channel, with real peers:
 * our smee-compatible channel server fixture, the real npm smee-client (its CLI, as a
 * child process, as it runs in the client container), the sidecar in this process, and a
 * recording downstream.
 */

type Sidecar = Awaited<ReturnType<typeof start>>;

// smee-sidecar's exact wording; probes and dashboards read these lines.
const SUCCESS_LINES = 'status=success\nmessage=Health check completed successfully\n';
const TIMEOUT_LINES = 'status=failure\nmessage=Health check timed out waiting for event round-trip\n';

const INTERVAL_S = 1;
const TIMEOUT_S = 1;
/** Scheduling, process start-up and file-system slack on a busy CI machine. */
const SLACK_MS = 2_500;

async function statusText(sidecar: Sidecar): Promise<string> {
  return readFile(sidecar.config.sharedVolume.healthFilePath, 'utf8').catch(() => '');
}

function waitForStatus(sidecar: Sidecar, lines: string | RegExp, timeoutMs: number): Promise<string> {
  let last = '';
  return waitFor(
    `status file to show ${String(lines)}`,
    async () => {
      last = await statusText(sidecar);
      return (typeof lines === 'string' ? last.startsWith(lines) : lines.test(last)) && last;
    },
    { timeoutMs, describeLast: () => JSON.stringify(last) },
  );
}

/** Runs a probe script the sidecar wrote into the shared volume, with POSIX sh, as a kubelet exec probe would. */
function runProbe(sidecar: Sidecar, script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.HEALTH_FILE_PATH; // the script's own default (the configured path) must be used
  return new Promise((resolve) => {
    execFile('sh', [join(sidecar.config.sharedVolume.path, script)], { env, timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A sample's value on /metrics, or undefined when the series is absent. */
async function metric(sidecar: Sidecar, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${sidecar.managementUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function healthGauge(sidecar: Sidecar): Promise<number> {
  const v = await metric(sidecar, 'health_check');
  if (v === undefined) throw new Error('no health_check gauge in /metrics');
  return v;
}

function healthEventsAt(downstream: RecordingServer) {
  return downstream.requests.filter((r) => r.headers['x-health-check-id'] !== undefined || r.body.includes('"health-check"'));
}

function healthPosts(channelServer: SmeeChannelServer, channel: string) {
  return channelServer.posts.filter((p) => p.channel === channel && p.headers['x-health-check-id'] !== undefined);
}

describe('smee.io wire format, real smee-client (CLI child process)', () => {
  const channel = 'smeeRoundTrip0001';
  const channelServer = new SmeeChannelServer({ keepAliveMs: 500, postAnswer: 'smee' });
  const downstream = new RecordingServer();
  let sidecar: Sidecar;
  let client: SmeeClientProcess;

  const startClient = async () => {
    client.start();
    await waitFor('smee-client to subscribe', () => channelServer.subscriberCount(channel, 'smee') === 1, {
      timeoutMs: 10_000,
      describeLast: () => client.output,
    });
  };

  beforeAll(async () => {
    await channelServer.listen();
    await downstream.listen();
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: `${downstream.url}/webhook`,
      SMEE_CHANNEL_URL: channelServer.channelUrl(channel),
      HEALTH_CHECK_INTERVAL_SECONDS: String(INTERVAL_S),
      HEALTH_CHECK_TIMEOUT_SECONDS: String(TIMEOUT_S),
    });
    client = new SmeeClientProcess(channelServer.channelUrl(channel), sidecar.relayUrl);
    await startClient();
  });

  afterAll(async () => {
    await client?.stop();
    await sidecar?.close();
    await channelServer.close();
    await downstream.close();
  });

  it('reports success in the status file once the client is up, and the probe script passes', async () => {
    await waitForStatus(sidecar, SUCCESS_LINES, 2 * (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    expect(healthPosts(channelServer, channel).length).toBeGreaterThan(0);
    const probe = await runProbe(sidecar, 'check-smee-health.sh');
    expect(probe).toMatchObject({ code: 0 });
    expect(probe.stdout).toMatch(/^Health check passed/);
    expect(await healthGauge(sidecar)).toBe(1);
  });

  it('relays a webhook posted to the channel to downstream, query included (JSON as smee-client re-serialises it)', async () => {
    const payload = { action: 'opened', number: 7, pull_request: { title: 'caf\u00e9 & <tags>', labels: ['a', 'b'] } };
    const raw = `{ "action":  "opened",\n  "number": 7, "pull_request": {"title": "caf\\u00e9 & <tags>", "labels": ["a","b"]} }`;
    const before = downstream.requests.length;
    const res = await fetch(`${channelServer.channelUrl(channel)}?delivery=abc123`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'pull_request', 'x-github-delivery': 'd-0001' },
      body: raw,
    });
    expect(res.status).toBe(200);
    await res.text();

    const got = await waitFor(
      'the webhook at downstream',
      () => downstream.requests.slice(before).find((r) => r.headers['x-github-delivery'] === 'd-0001'),
      {
        timeoutMs: 5_000,
        describeLast: () => client.output,
      },
    );
    expect(got.method).toBe('POST');
    expect(got.url).toBe('/webhook/?delivery=abc123');
    expect(got.headers['x-github-event']).toBe('pull_request');
    expect(got.headers['content-type']).toBe('application/json');
    expect(JSON.parse(got.body.toString('utf8'))).toEqual(payload);
    expect(downstream.requests.slice(before).filter((r) => r.headers['x-github-delivery'] === 'd-0001')).toHaveLength(1);
  });

  it('never relays health-check events to downstream', async () => {
    // At least two round trips through smee-client while we watch.
    const seen = healthPosts(channelServer, channel).length;
    await waitFor('two more health checks', () => healthPosts(channelServer, channel).length >= seen + 2, {
      timeoutMs: 2 * (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS,
    });
    await waitForStatus(sidecar, SUCCESS_LINES, 1000);
    expect(healthEventsAt(downstream)).toEqual([]);
  });

  it('reports the timeout when the client is stopped, and success again once it is back', async () => {
    await waitForStatus(sidecar, SUCCESS_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    const stoppedAt = performance.now();
    await client.stop();
    await waitFor('the client to be gone from the channel', () => channelServer.subscriberCount(channel) === 0);

    await waitForStatus(sidecar, TIMEOUT_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    const detectedMs = performance.now() - stoppedAt;
    const failing = await runProbe(sidecar, 'check-smee-health.sh');
    expect(failing.code).toBe(1);
    expect(failing.stdout).toContain('Health check failed: failure - Health check timed out waiting for event round-trip');
    expect(await healthGauge(sidecar)).toBe(0);

    await startClient();
    await waitForStatus(sidecar, SUCCESS_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    const passing = await runProbe(sidecar, 'check-smee-health.sh');
    expect(passing.code).toBe(0);
    expect(await healthGauge(sidecar)).toBe(1);
    expect(detectedMs).toBeLessThan((INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
  });

  it('detects a frozen client whose connection stays open (SIGSTOP), recovers on SIGCONT, and drops the late events', async () => {
    await waitForStatus(sidecar, SUCCESS_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    const before = downstream.requests.length;
    const foreign = async () => (await metric(sidecar, 'sidecar_health_events_total{origin="foreign"}')) ?? 0;
    const foreignBefore = await foreign();
    client.signal('SIGSTOP');
    try {
      await waitForStatus(sidecar, TIMEOUT_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
      // Frozen, not gone: the server still holds its stream.
      expect(channelServer.subscriberCount(channel, 'smee')).toBe(1);
    } finally {
      client.signal('SIGCONT');
    }
    await waitForStatus(sidecar, SUCCESS_LINES, (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    // The events queued while frozen are forwarded on thaw, after their checks gave up:
    // the relay counts them as foreign and answers them itself.
    await waitFor('late health events counted as foreign', async () => (await foreign()) > foreignBefore);
    expect(healthEventsAt(downstream)).toEqual([]);
    expect(downstream.requests.length).toBe(before);
  });
});

describe('gosmee wire format, with a stand-in for the gosmee client', () => {
  // gosmee is a Go binary that cannot be installed here: GosmeeLikeClient reproduces its
  // documented forwarding (subscribe on /events/<channel>, POST the base64-decoded bodyB
  // with the headers), so that the sidecar is exercised against the gosmee wire format.
  const channel = 'gosmeeRoundTrip01';
  const secret = 'it-is-a-secret';
  const channelServer = new SmeeChannelServer({ keepAliveMs: 500, postAnswer: 'gosmee' });
  const downstream = new RecordingServer();
  let sidecar: Sidecar;
  let client: GosmeeLikeClient;

  beforeAll(async () => {
    await channelServer.listen();
    await downstream.listen();
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: `${downstream.url}/hooks`,
      SMEE_CHANNEL_URL: channelServer.channelUrl(channel),
      HEALTH_CHECK_INTERVAL_SECONDS: String(INTERVAL_S),
      HEALTH_CHECK_TIMEOUT_SECONDS: String(TIMEOUT_S),
    });
    client = new GosmeeLikeClient(channelServer.channelUrl(channel), sidecar.relayUrl);
    await client.start();
  });

  afterAll(async () => {
    await client?.stop();
    await sidecar?.close();
    await channelServer.close();
    await downstream.close();
  });

  it('reports success: the health event comes back through /events/<channel> and the gosmee POST answer (202) counts as accepted', async () => {
    await waitForStatus(sidecar, SUCCESS_LINES, 2 * (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS);
    expect(channelServer.subscriberCount(channel, 'gosmee')).toBe(1);
    expect(healthPosts(channelServer, channel).every((p) => p.status === 202)).toBe(true);
    const probe = await runProbe(sidecar, 'check-smee-health.sh');
    expect(probe.code).toBe(0);
    expect(client.errors).toEqual([]);
  });

  it('relays a webhook byte for byte, so that its X-Hub-Signature-256 verifies at downstream', async () => {
    // Whitespace, escapes and non-ASCII that a JSON re-serialisation would change.
    const raw = Buffer.from('{ "action":  "opened",\n\t"title": "caf\\u00e9 \u00e9 <&>",  "n": 1.50 }\n', 'utf8');
    const signature = `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
    const res = await fetch(channelServer.channelUrl(channel), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'pull_request',
        'x-github-delivery': 'g-0001',
        'x-hub-signature-256': signature,
      },
      body: raw,
    });
    expect(res.status).toBe(202);
    await res.text();

    const got = await waitFor('the webhook at downstream', () =>
      downstream.requests.find((r) => r.headers['x-github-delivery'] === 'g-0001'),
    );
    expect(got.body.equals(raw)).toBe(true);
    const expected = `sha256=${createHmac('sha256', secret).update(got.body).digest('hex')}`;
    expect(got.headers['x-hub-signature-256']).toBe(expected);
    expect(got.headers['x-github-event']).toBe('pull_request');
    expect(got.url).toBe('/hooks/');
    // The client records the answer when it arrives, a moment after downstream has the request.
    const answered = await waitFor("the relay's answer at the client", () =>
      client.forwarded.find((f) => f.headers['X-Github-Delivery'] === 'g-0001'),
    );
    expect(answered.status).toBe(200);
  });

  it('never relays health-check events to downstream', async () => {
    const seen = healthPosts(channelServer, channel).length;
    await waitFor('two more health checks', () => healthPosts(channelServer, channel).length >= seen + 2, {
      timeoutMs: 2 * (INTERVAL_S + TIMEOUT_S) * 1000 + SLACK_MS,
    });
    await waitForStatus(sidecar, SUCCESS_LINES, 1000);
    expect(healthEventsAt(downstream)).toEqual([]);
  });
});

describe('smee server answering the health-check POST with 500', () => {
  const channel = 'serverError00001';
  // A long timeout, so that failing "at once" cannot be confused with timing out.
  const timeoutS = 10;
  const channelServer = new SmeeChannelServer({ keepAliveMs: 500 });
  let sidecar: Sidecar;

  beforeAll(async () => {
    await channelServer.listen();
    channelServer.forceStatus = 500;
    sidecar = await start({
      SMEE_CHANNEL_URL: channelServer.channelUrl(channel),
      HEALTH_CHECK_INTERVAL_SECONDS: '0.5',
      HEALTH_CHECK_TIMEOUT_SECONDS: String(timeoutS),
    });
  });

  afterAll(async () => {
    await sidecar?.close();
    await channelServer.close();
  });

  it('fails the check at once, with the status in the message', async () => {
    const text = await waitForStatus(sidecar, /^status=failure\n/, 3_000);
    const observedAt = Date.now();
    const firstPost = await waitFor('the POST to be recorded', () => channelServer.posts[0]);
    expect(firstPost.status).toBe(500);
    expect(observedAt - firstPost.receivedAt).toBeLessThan(1_500); // far below the 10 s timeout
    const message = /^message=(.*)$/m.exec(text)![1];
    expect(message).toContain('500');
    expect(message).not.toMatch(/timed out/);

    const probe = await runProbe(sidecar, 'check-smee-health.sh');
    expect(probe.code).toBe(1);
    expect(probe.stdout).toContain('Health check failed: failure');
    expect(probe.stdout).toContain('500');
  });
});

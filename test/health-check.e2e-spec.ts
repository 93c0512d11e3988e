import { readFileSync, statSync } from 'node:fs';
import request from 'supertest';
import { LoopbackChannel } from './support/loopback-channel';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort, start } from './support/sidecar';
import { HealthCheckService, HISTORY_LENGTH } from '../src/health-check/health-check.service';

type Started = Awaited<ReturnType<typeof start>>;

const statusOf = (s: Started) => {
  try {
    return readFileSync(s.config.sharedVolume.healthFilePath, 'utf8');
  } catch {
    return '';
  }
};

async function metric(s: Started, name: string): Promise<number | undefined> {
  const text = (await request(s.managementUrl).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('end-to-end health check', () => {
  const channel = new LoopbackChannel();
  const downstream = new RecordingServer();
  let sidecar: Started | undefined;

  async function startWith(env: Record<string, string> = {}): Promise<Started> {
    const relayPort = await freePort();
    channel.target = `http://127.0.0.1:${relayPort}`;
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: downstream.url,
      SMEE_CHANNEL_URL: await channelUrl,
      RELAY_PORT: String(relayPort),
      HEALTH_CHECK_INTERVAL_SECONDS: '3600',
      HEALTH_CHECK_TIMEOUT_SECONDS: '0.4',
      ...env,
    });
    return sidecar;
  }

  let channelUrl: Promise<string>;
  beforeAll(async () => {
    channelUrl = channel.listen();
    await downstream.listen();
  });
  afterAll(async () => {
    await channel.close();
    await downstream.close();
  });
  beforeEach(() => {
    channel.status = 200;
    channel.frozen = false;
    channel.posts = 0;
    downstream.requests.length = 0;
  });
  afterEach(async () => {
    await sidecar?.close();
    sidecar = undefined;
  });

  it('runs the first check at start-up and writes success; the event never reaches downstream', async () => {
    const s = await startWith();
    const text = await eventually(() => (statusOf(s).startsWith('status=success') ? statusOf(s) : undefined), 3000, 'status=success');
    expect(text.split('\n').slice(0, 2)).toEqual(['status=success', 'message=Health check completed successfully']);
    expect(text).toMatch(/^checked_at=\d{4}-\d\d-\d\dT/m);
    expect(text).toMatch(/^round_trip_ms=\d+$/m);
    expect(downstream.requests).toHaveLength(0);
    expect(await metric(s, 'health_check')).toBe(1);
    expect((await request(s.managementUrl).get('/readyz')).status).toBe(200);
    expect((await request(s.managementUrl).get('/healthz')).status).toBe(200);
    const status = (await request(s.managementUrl).get('/status')).body;
    expect(status.healthCheck).toMatchObject({ status: 'success', message: 'Health check completed successfully' });
  });

  it('fails at once, naming the status, when the smee server answers non-2xx', async () => {
    channel.status = 503;
    const started = Date.now();
    const s = await startWith({ HEALTH_CHECK_TIMEOUT_SECONDS: '5' });
    const text = await eventually(() => (statusOf(s).startsWith('status=failure') ? statusOf(s) : undefined), 3000, 'status=failure');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(text.split('\n')[1]).toBe('message=Smee server answered 503 to the health-check POST');
    expect(await metric(s, 'health_check')).toBe(0);
    expect(await metric(s, 'sidecar_health_checks_total{result="server_error"}')).toBe(1);
    const ready = await request(s.managementUrl).get('/readyz');
    expect(ready.status).toBe(503);
  });

  it('fails with the reason when the POST cannot be made', async () => {
    const closed = await freePort();
    const s = await startWith({ SMEE_CHANNEL_URL: `http://127.0.0.1:${closed}/channel` });
    const text = await eventually(() => (statusOf(s).startsWith('status=failure') ? statusOf(s) : undefined), 3000, 'status=failure');
    expect(text.split('\n')[1]).toMatch(/^message=Failed to POST to smee server: ECONNREFUSED/);
  });

  it('fails with the timeout message when the client does not bring the event back', async () => {
    channel.frozen = true;
    const s = await startWith();
    const text = await eventually(() => (statusOf(s).startsWith('status=failure') ? statusOf(s) : undefined), 3000, 'status=failure');
    expect(text.split('\n')[1]).toBe('message=Health check timed out waiting for event round-trip');
    expect(await metric(s, 'sidecar_health_checks_total{result="timeout"}')).toBe(1);
    expect(await metric(s, 'sidecar_health_events_total{origin="own"}')).toBe(0);
  });

  it('recovers on the next round and keeps rewriting the file every interval', async () => {
    channel.frozen = true;
    const s = await startWith({ HEALTH_CHECK_INTERVAL_SECONDS: '0.6', HEALTH_CHECK_TIMEOUT_SECONDS: '0.3' });
    await eventually(() => (statusOf(s).startsWith('status=failure') ? true : undefined), 3000, 'failure');
    channel.frozen = false;
    await eventually(() => (statusOf(s).startsWith('status=success') ? true : undefined), 3000, 'success');
    const first = statSync(s.config.sharedVolume.healthFilePath).mtimeMs;
    await eventually(
      () => (statSync(s.config.sharedVolume.healthFilePath).mtimeMs > first ? true : undefined),
      3000,
      'a newer status file',
    );
    expect(statusOf(s).startsWith('status=success')).toBe(true);
  });

  it('lists the last checks in /status, oldest first, with since when the current result holds', async () => {
    const s = await startWith();
    await eventually(() => (statusOf(s).startsWith('status=success') ? true : undefined), 3000, 'first check');
    const checker = s.app.get(HealthCheckService);
    await checker.runOnce();
    channel.status = 503;
    const failed = await checker.runOnce();
    await checker.runOnce();
    const hc = (await request(s.managementUrl).get('/status')).body.healthCheck;
    expect(hc.history.map((h: { status: string; reason: string }) => [h.status, h.reason])).toEqual([
      ['success', 'success'],
      ['success', 'success'],
      ['failure', 'server_error'],
      ['failure', 'server_error'],
    ]);
    expect(hc.history[0].roundTripMs).toEqual(expect.any(Number));
    expect(hc.history[2].roundTripMs).toBeNull();
    expect(hc.history[2].checkedAt).toBe(failed.checkedAt.toISOString());
    // Failing since the first failure, not the last.
    expect(hc).toMatchObject({ status: 'failure', since: failed.checkedAt.toISOString(), intervalSeconds: 3600 });

    channel.status = 200;
    for (let i = 0; i < HISTORY_LENGTH; i++) await checker.runOnce();
    const after = (await request(s.managementUrl).get('/status')).body.healthCheck;
    expect(after.history).toHaveLength(HISTORY_LENGTH);
    expect(after.history.every((h: { status: string }) => h.status === 'success')).toBe(true);
    expect(after.since).toBe(after.history[0].checkedAt);
  });

  it('never runs two checks at once: ten concurrent calls share one POST', async () => {
    const s = await startWith();
    await eventually(() => (statusOf(s).startsWith('status=success') ? true : undefined), 3000, 'first check');
    const checker = s.app.get(HealthCheckService);
    channel.posts = 0;
    const results = await Promise.all(Array.from({ length: 10 }, () => checker.runOnce()));
    expect(channel.posts).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(results[0].status).toBe('success');
  });

  it('completes concurrent checks of ten sidecars on one channel, each by its own id', async () => {
    // Ten replicas behind one smee channel: each sees the others' events and must count them as foreign.
    const s = await startWith();
    await eventually(() => (statusOf(s).startsWith('status=success') ? true : undefined), 3000, 'first check');
    const own = await metric(s, 'sidecar_health_events_total{origin="own"}');
    const others = await Promise.all(
      Array.from({ length: 10 }, (_, i) => request(s.relayUrl).post('/').set('x-health-check-id', `replica-${i}`).send('{}')),
    );
    expect(others.every((r) => r.status === 200)).toBe(true);
    expect(await metric(s, 'sidecar_health_events_total{origin="foreign"}')).toBe(10);
    expect(await metric(s, 'sidecar_health_events_total{origin="own"}')).toBe(own);
    expect(downstream.requests).toHaveLength(0);
  });

  it('writes the probe scripts into the shared volume at start-up', async () => {
    const s = await startWith();
    for (const name of ['check-smee-health.sh', 'check-sidecar-health.sh', 'check-file-age.sh']) {
      const st = statSync(`${s.config.sharedVolume.path}/${name}`);
      expect(st.mode & 0o777).toBe(0o555);
    }
  });
});

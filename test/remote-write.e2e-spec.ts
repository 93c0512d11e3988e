import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gauge, Histogram, register } from 'prom-client';
import request from 'supertest';
import { RemoteWriteService } from '../src/metrics/remote-write/remote-write.service';
import { Recorded, RecordingServer } from './support/recording-server';
import { eventually, freePort, start } from './support/sidecar';
import { snappyBlockDecode } from './support/snappy-block';
import { makeTestCa } from './support/test-ca';
import { decodeWriteRequest, DecodedWriteRequest, seriesKey } from './support/write-request-decoder';

type Started = Awaited<ReturnType<typeof start>>;

const decode = (r: Recorded): DecodedWriteRequest => decodeWriteRequest(snappyBlockDecode(r.body));

async function metric(s: Started, line: string): Promise<number | undefined> {
  const text = (await request(s.managementUrl).get('/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

const pushes = (s: Started) => s.app.get(RemoteWriteService);

const stampOf = (req: DecodedWriteRequest) => req.timeseries[0].samples[0].timestampMs;

/** The value the push carried for sidecar_remote_write_pushes_total{result="success"}. */
const successesIn = (req: DecodedWriteRequest) =>
  req.timeseries.find(
    (t) => seriesKey(t.labels).startsWith('sidecar_remote_write_pushes_total{') && seriesKey(t.labels).includes('result="success"'),
  )!.samples[0].value;

describe('remote write', () => {
  const receiver = new RecordingServer();
  const dir = mkdtempSync(join(tmpdir(), 'rw-e2e-'));
  let sidecar: Started | undefined;

  beforeAll(() => receiver.listen());
  afterAll(() => receiver.close());
  beforeEach(() => {
    receiver.requests.length = 0;
    receiver.respond = (_r, res) => res.writeHead(204).end();
  });
  afterEach(async () => {
    await sidecar?.close();
    sidecar = undefined;
  });

  async function startWith(env: Record<string, string> = {}): Promise<Started> {
    sidecar = await start({
      PROMETHEUS_REMOTE_WRITE_URL: `${receiver.url}/api/v1/write`,
      PUSH_INTERVAL: '1h',
      // Bounds the final push at close() too: a receiver that is down must not hold a test for the default 30 s.
      REMOTE_WRITE_TIMEOUT: '1s',
      REMOTE_WRITE_MIN_BACKOFF: '20ms',
      REMOTE_WRITE_MAX_BACKOFF: '100ms',
      ...env,
    });
    return sidecar;
  }

  it('pushes the registry, at start-up and on demand, with the remote-write headers, sorted labels and the extra labels', async () => {
    // A histogram in the registry the sidecar serves, as any feature's would be.
    const latency = () =>
      new Histogram({ name: 'test_latency_seconds', help: 'Test latency.', labelNames: ['op'], buckets: [0.1, 1], registers: [register] });
    const s = await startWith({
      REMOTE_WRITE_LABELS: 'namespace=team-a,pod=web-1',
      REMOTE_WRITE_HEADERS: 'X-Scope-OrgID=tenant-1',
      PUSH_INTERVAL: '1h',
    });
    await eventually(() => (receiver.requests.length > 0 ? true : undefined), 3000, 'the start-up push');
    latency().labels('read').observe(0.5);
    await pushes(s).pushNow();
    const first = await eventually(() => receiver.requests[1], 3000, 'the second push');
    expect(first.method).toBe('POST');
    expect(first.url).toBe('/api/v1/write');
    expect(first.headers).toMatchObject({
      'content-encoding': 'snappy',
      'content-type': 'application/x-protobuf',
      'x-prometheus-remote-write-version': '0.1.0',
      'user-agent': 'pod-sidecar/0.1.0',
      'x-scope-orgid': 'tenant-1',
    });
    expect(first.headers.authorization).toBeUndefined();
    const req = decode(first);
    expect(req.timeseries.length).toBeGreaterThan(10);
    const before = Date.now();
    for (const series of req.timeseries) {
      const names = series.labels.map(([n]) => n);
      expect(names).toEqual([...names].sort());
      expect(series.labels.every(([, v]) => v !== '')).toBe(true);
      expect(Object.fromEntries(series.labels)).toMatchObject({
        namespace: 'team-a',
        pod: 'web-1',
        job: 'pod-sidecar',
        instance: hostname(),
      });
      expect(series.samples).toHaveLength(1);
      expect(series.samples[0].timestampMs).toBeLessThanOrEqual(before);
      expect(series.samples[0].timestampMs).toBeGreaterThan(before - 10_000);
    }
    const keys = req.timeseries.map((t) => seriesKey(t.labels));
    expect(keys).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^sidecar_remote_write_pushes_total\{.*result="success"/),
        expect.stringMatching(/^sidecar_remote_write_queue_length\{/),
      ]),
    );
    // The histogram arrives expanded, with le as /metrics writes it.
    const value = (name: string, labels: Record<string, string> = {}) => {
      const all: Record<string, string> = {
        instance: hostname(),
        job: 'pod-sidecar',
        namespace: 'team-a',
        pod: 'web-1',
        op: 'read',
        ...labels,
      };
      const key = `${name}{${Object.keys(all)
        .sort()
        .map((n) => `${n}=${JSON.stringify(all[n])}`)
        .join(',')}}`;
      return req.timeseries.find((t) => seriesKey(t.labels) === key)?.samples[0].value;
    };
    expect(value('test_latency_seconds_bucket', { le: '0.1' })).toBe(0);
    expect(value('test_latency_seconds_bucket', { le: '1' })).toBe(1);
    expect(value('test_latency_seconds_bucket', { le: '+Inf' })).toBe(1);
    expect(value('test_latency_seconds_sum')).toBe(0.5);
    expect(value('test_latency_seconds_count')).toBe(1);
    expect(req.metadata).toEqual(
      expect.arrayContaining([
        { type: 1, family: 'sidecar_remote_write_pushes_total', help: expect.any(String), unit: '' },
        { type: 4, family: 'test_latency_seconds', help: 'Test latency.', unit: '' },
      ]),
    );

    await eventually(
      async () => ((await metric(s, 'sidecar_remote_write_pushes_total{result="success"}')) === 2 ? true : undefined),
      2000,
      'success counted',
    );
    const sent = decode(receiver.requests[0]).timeseries.length;
    expect(await metric(s, 'sidecar_remote_write_samples_sent_total')).toBeGreaterThan(sent);
    expect(await metric(s, 'sidecar_remote_write_queue_length')).toBe(0);
    expect(await metric(s, 'sidecar_remote_write_last_success_timestamp_seconds')).toBeGreaterThan(before / 1000 - 10);
    const status = (await request(s.managementUrl).get('/status')).body;
    expect(status.features.remoteWrite).toBe(true);
    expect(status.remoteWrite).toMatchObject({ queueLength: 0, consecutiveFailures: 0, lastError: null });
    // Only remote write is on: no relay port.
    expect(s.relayPort).toBeNull();
  });

  it('pushes every PUSH_INTERVAL, each push later than the one before, counters carried forward', async () => {
    await startWith({ PUSH_INTERVAL: '150ms' });
    const reqs = await eventually(() => (receiver.requests.length >= 4 ? receiver.requests.slice(0, 4) : undefined), 3000, 'four pushes');
    const decoded = reqs.map(decode);
    const stamps = decoded.map(stampOf);
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    expect(new Set(stamps).size).toBe(4);
    // Each push carries the successes before it (one behind only if a delivery outlasted an interval).
    const successes = decoded.map(successesIn);
    expect(successes[0]).toBe(0);
    expect(successes).toEqual([...successes].sort((a, b) => a - b));
    expect(successes[3]).toBeGreaterThanOrEqual(2);
  });

  it('retries 5xx with backoff until the receiver takes the push; nothing is lost', async () => {
    let failuresLeft = 3;
    receiver.respond = (_r, res) => (failuresLeft-- > 0 ? res.writeHead(503).end('overloaded') : res.writeHead(200).end());
    const s = await startWith();
    await eventually(() => (receiver.requests.length >= 4 ? true : undefined), 3000, 'three failures and a success');
    const bodies = receiver.requests.map((r) => r.body.toString('hex'));
    expect(new Set(bodies).size).toBe(1); // the same push, retried
    await eventually(
      async () => ((await metric(s, 'sidecar_remote_write_pushes_total{result="success"}')) === 1 ? true : undefined),
      2000,
      'success',
    );
    expect(await metric(s, 'sidecar_remote_write_pushes_total{result="server_error"}')).toBe(3);
    expect(await metric(s, 'sidecar_remote_write_samples_dropped_total{reason="rejected"}')).toBe(0);
    expect((await request(s.managementUrl).get('/status')).body.remoteWrite.consecutiveFailures).toBe(0);
  });

  it('honours Retry-After on 429, in seconds', async () => {
    const times: number[] = [];
    receiver.respond = (_r, res) => {
      times.push(Date.now());
      if (times.length === 1) res.writeHead(429, { 'Retry-After': '1' }).end();
      else res.writeHead(204).end();
    };
    const s = await startWith();
    await eventually(() => (times.length >= 2 ? true : undefined), 4000, 'the retry');
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(950);
    expect(receiver.requests[1].body.equals(receiver.requests[0].body)).toBe(true);
    expect(await metric(s, 'sidecar_remote_write_pushes_total{result="throttled"}')).toBe(1);
  });

  it('drops a push the receiver refuses with another 4xx, and goes on with the next', async () => {
    receiver.respond = (r, res) =>
      receiver.requests.indexOf(r) === 0 ? res.writeHead(400).end('out of order sample') : res.writeHead(204).end();
    const s = await startWith();
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the first push');
    await eventually(
      async () => ((await metric(s, 'sidecar_remote_write_pushes_total{result="rejected"}')) === 1 ? true : undefined),
      2000,
      'rejection counted',
    );
    const dropped = await metric(s, 'sidecar_remote_write_samples_dropped_total{reason="rejected"}');
    expect(dropped).toBe(decode(receiver.requests[0]).timeseries.length);
    expect((await request(s.managementUrl).get('/status')).body.remoteWrite.lastError).toBe('answered 400: out of order sample');
    await pushes(s).pushNow();
    await eventually(() => (receiver.requests.length >= 2 ? true : undefined), 3000, 'the next push');
    expect(receiver.requests).toHaveLength(2); // the refused one was not retried
    await eventually(
      async () => ((await metric(s, 'sidecar_remote_write_pushes_total{result="success"}')) === 1 ? true : undefined),
      2000,
      'success',
    );
  });

  it('retries when the receiver is unreachable or too slow, and counts network errors', async () => {
    const closed = await freePort();
    const s = await startWith({ PROMETHEUS_REMOTE_WRITE_URL: `http://127.0.0.1:${closed}/api/v1/write` });
    await eventually(
      async () => (((await metric(s, 'sidecar_remote_write_pushes_total{result="network_error"}')) ?? 0) >= 3 ? true : undefined),
      3000,
      'three refused connections',
    );
    expect((await request(s.managementUrl).get('/status')).body.remoteWrite.lastError).toMatch(/ECONNREFUSED/);
    expect(await metric(s, 'sidecar_remote_write_queue_length')).toBe(1);
    await s.close();
    sidecar = undefined;

    receiver.respond = () => undefined; // never answers
    const slow = await startWith({ REMOTE_WRITE_TIMEOUT: '200ms' });
    await eventually(
      async () => (((await metric(slow, 'sidecar_remote_write_pushes_total{result="network_error"}')) ?? 0) >= 2 ? true : undefined),
      3000,
      'two timeouts',
    );
    expect((await request(slow.managementUrl).get('/status')).body.remoteWrite.lastError).toBe('no answer within 200 ms');
  });

  it('keeps at most REMOTE_WRITE_QUEUE_SIZE pushes while the receiver is away, dropping the oldest, then delivers the rest in order', async () => {
    let down = true;
    const delivered: number[] = [];
    receiver.respond = (r, res) => {
      const stamp = stampOf(decode(r));
      if (!down) delivered.push(stamp);
      res.writeHead(down ? 503 : 204).end();
    };
    const s = await startWith({ REMOTE_WRITE_QUEUE_SIZE: '3', REMOTE_WRITE_MAX_BACKOFF: '50ms' });
    const svc = pushes(s);
    for (let i = 0; i < 5; i++) await svc.pushNow(); // 6 pushes with the start-up one
    expect(await metric(s, 'sidecar_remote_write_queue_length')).toBe(3);
    const dropped = await metric(s, 'sidecar_remote_write_samples_dropped_total{reason="queue_full"}');
    expect(dropped).toBeGreaterThan(0);
    expect(svc.status().queueLength).toBe(3);
    down = false;
    await eventually(() => (svc.status().queueLength === 0 ? true : undefined), 3000, 'the queue drained');
    // The three newest pushes, each once, oldest first.
    expect(delivered).toHaveLength(3);
    expect(delivered).toEqual([...delivered].sort((a, b) => a - b));
    expect(await metric(s, 'sidecar_remote_write_pushes_total{result="success"}')).toBe(3);
  });

  it('survives a registry collect callback that throws: that round is skipped, the next one pushes', async () => {
    const s = await startWith();
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the start-up push');
    let fail = true;
    new Gauge({
      name: 'test_flaky',
      help: 'Throws once.',
      registers: [register],
      collect() {
        if (fail) {
          fail = false;
          throw new Error('collect failed');
        }
        this.set(1);
      },
    });
    await pushes(s).pushNow();
    await pushes(s).pushNow();
    const second = await eventually(() => receiver.requests[1], 3000, 'the next push');
    expect(receiver.requests).toHaveLength(2);
    expect(decode(second).timeseries.some((t) => seriesKey(t.labels).startsWith('test_flaky{'))).toBe(true);
  });

  it('pushes once more at shutdown with the final values', async () => {
    const s = await startWith();
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the first push');
    await s.close();
    sidecar = undefined;
    expect(receiver.requests).toHaveLength(2);
    const last = decode(receiver.requests[1]);
    expect(stampOf(last)).toBeGreaterThan(stampOf(decode(receiver.requests[0])));
    expect(successesIn(last)).toBe(1);
  });

  it('counts a push answered during shutdown in the final push', async () => {
    let answerFirst!: () => void;
    receiver.respond = (r, res) => {
      if (receiver.requests.indexOf(r) !== 0) return void res.writeHead(204).end();
      answerFirst = () => res.writeHead(204).end();
    };
    const s = await startWith();
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the first push');
    const closing = s.close();
    sidecar = undefined;
    await new Promise((r) => setTimeout(r, 100));
    answerFirst();
    await closing;
    expect(receiver.requests).toHaveLength(2);
    expect(successesIn(decode(receiver.requests[1]))).toBe(1);
  });

  it('gives the final push at most REMOTE_WRITE_TIMEOUT when the receiver is down, and counts what is left', async () => {
    receiver.respond = (_r, res) => res.writeHead(503).end();
    const s = await startWith({ REMOTE_WRITE_TIMEOUT: '400ms' });
    await eventually(() => (receiver.requests.length >= 2 ? true : undefined), 3000, 'failing pushes');
    const started = Date.now();
    await s.close();
    sidecar = undefined;
    expect(Date.now() - started).toBeLessThan(1500);
    const dropped = (await register.getSingleMetric('sidecar_remote_write_samples_dropped_total')!.get()).values.find(
      (v) => v.labels.reason === 'shutdown',
    )!.value;
    expect(dropped).toBeGreaterThan(0);
  });

  it('sends basic auth from a password file, re-read on every push', async () => {
    const pw = join(dir, 'password');
    writeFileSync(pw, 'first\n');
    const s = await startWith({ REMOTE_WRITE_USERNAME: 'pusher', REMOTE_WRITE_PASSWORD_FILE: pw });
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the first push');
    expect(receiver.requests[0].headers.authorization).toBe(`Basic ${Buffer.from('pusher:first').toString('base64')}`);
    writeFileSync(pw, 'rotated');
    await pushes(s).pushNow();
    await eventually(() => (receiver.requests.length >= 2 ? true : undefined), 3000, 'the second push');
    expect(receiver.requests[1].headers.authorization).toBe(`Basic ${Buffer.from('pusher:rotated').toString('base64')}`);
  });

  it('sends a bearer token from a file, re-read on every push, keeping the last one while the file is missing', async () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'tok-1\n');
    const s = await startWith({ REMOTE_WRITE_BEARER_TOKEN_FILE: token });
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 3000, 'the first push');
    expect(receiver.requests[0].headers.authorization).toBe('Bearer tok-1');
    writeFileSync(token, 'tok-2');
    await pushes(s).pushNow();
    await eventually(() => (receiver.requests.length >= 2 ? true : undefined), 3000, 'the second push');
    expect(receiver.requests[1].headers.authorization).toBe('Bearer tok-2');
    execFileSync('rm', [token]);
    await pushes(s).pushNow();
    await eventually(() => (receiver.requests.length >= 3 ? true : undefined), 3000, 'the third push');
    expect(receiver.requests[2].headers.authorization).toBe('Bearer tok-2');
  });

  describe('scrape targets', () => {
    const app = new RecordingServer();
    beforeAll(() => app.listen());
    afterAll(() => app.close());

    it("pushes the main container's metrics with the extra labels in a request of their own, and up=0 for a target that fails", async () => {
      app.respond = (_r, res) =>
        res
          .writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' })
          .end(
            [
              '# HELP jobs_total Jobs done.',
              '# TYPE jobs_total counter',
              'jobs_total{queue="a \\"b\\"",job="worker"} 12',
              'queue_depth 3 1700000000000',
              '',
            ].join('\n'),
          );
      const broken = new RecordingServer();
      await broken.listen();
      broken.respond = (_r, res) => res.writeHead(200).end('not { an exposition');
      const closed = await freePort();
      const port = app.port;
      const s = await startWith({
        SCRAPE_TARGETS: `${app.url}/metrics,${broken.url}/metrics,http://127.0.0.1:${closed}/metrics`,
        REMOTE_WRITE_LABELS: 'namespace=team-a',
      });
      try {
        // One request for the sidecar's series (with `up` of every target), one for the target that answered.
        const [own, app1] = await eventually(
          () => (receiver.requests.length >= 2 ? receiver.requests.map(decode) : undefined),
          3000,
          'the first push',
        );
        expect(app1.timeseries.every((t) => t.labels.some(([n, v]) => n === 'job' && v === 'scrape'))).toBe(true);
        const req = { timeseries: [...own.timeseries, ...app1.timeseries], metadata: [...own.metadata, ...app1.metadata] };
        const host = hostname();
        const by = (key: string) => req.timeseries.find((t) => seriesKey(t.labels) === key);
        expect(
          by(`jobs_total{exported_job="worker",instance="${host}:${port}",job="scrape",namespace="team-a",queue="a \\"b\\""}`)?.samples[0]
            .value,
        ).toBe(12);
        expect(by(`queue_depth{instance="${host}:${port}",job="scrape",namespace="team-a"}`)?.samples).toEqual([
          { value: 3, timestampMs: 1_700_000_000_000 },
        ]);
        expect(by(`up{instance="${host}:${port}",job="scrape",namespace="team-a"}`)?.samples[0].value).toBe(1);
        expect(by(`up{instance="${host}:${broken.port}",job="scrape",namespace="team-a"}`)?.samples[0].value).toBe(0);
        expect(by(`up{instance="${host}:${closed}",job="scrape",namespace="team-a"}`)?.samples[0].value).toBe(0);
        expect(req.metadata).toEqual(expect.arrayContaining([{ type: 1, family: 'jobs_total', help: 'Jobs done.', unit: '' }]));
        expect(await metric(s, `sidecar_scrape_target_up{instance="${host}:${port}"}`)).toBe(1);
        expect(await metric(s, `sidecar_scrape_target_up{instance="${host}:${broken.port}"}`)).toBe(0);
        expect(await metric(s, `sidecar_scrape_failures_total{instance="${host}:${closed}"}`)).toBe(1);
        const targets = (await request(s.managementUrl).get('/status')).body.remoteWrite.targets;
        expect(targets).toEqual(
          expect.arrayContaining([
            { instance: `${host}:${broken.port}`, up: false, reason: expect.stringMatching(/^cannot parse the exposition: line 1: /) },
            { instance: `${host}:${closed}`, up: false, reason: expect.stringMatching(/ECONNREFUSED/) },
          ]),
        );
        // The sidecar's own series are still there.
        expect(req.timeseries.some((t) => seriesKey(t.labels).startsWith('sidecar_remote_write_queue_length{'))).toBe(true);
      } finally {
        await broken.close();
      }
    });
  });

  describe('TLS', () => {
    let server: HttpsServer;
    const seen: Array<{ cn: string | undefined; authorized: boolean }> = [];
    let ca: string;
    let clientCert: string;
    let clientKey: string;

    beforeAll(async () => {
      const made = makeTestCa();
      [ca, clientCert, clientKey] = [made.ca, made.clientCert, made.clientKey];
      server = createHttpsServer(
        {
          key: readFileSync(made.serverKey),
          cert: readFileSync(made.serverCert),
          ca: readFileSync(ca),
          requestCert: true,
          rejectUnauthorized: false,
        },
        (req, res) => {
          const socket = req.socket as import('node:tls').TLSSocket;
          seen.push({ cn: socket.getPeerCertificate()?.subject?.CN as string | undefined, authorized: socket.authorized });
          req.resume();
          req.on('end', () => res.writeHead(socket.authorized ? 204 : 401).end());
        },
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));
    beforeEach(() => (seen.length = 0));

    const url = () => `https://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`;

    it('verifies the receiver with REMOTE_WRITE_CA_FILE and presents the client certificate', async () => {
      const s = await startWith({
        PROMETHEUS_REMOTE_WRITE_URL: url(),
        REMOTE_WRITE_CA_FILE: ca,
        REMOTE_WRITE_CERT_FILE: clientCert,
        REMOTE_WRITE_KEY_FILE: clientKey,
      });
      await eventually(
        async () => ((await metric(s, 'sidecar_remote_write_pushes_total{result="success"}')) === 1 ? true : undefined),
        3000,
        'a push over mTLS',
      );
      expect(seen[0]).toEqual({ cn: 'pod-sidecar', authorized: true });
    });

    it('refuses a receiver it cannot verify, unless REMOTE_WRITE_INSECURE_SKIP_VERIFY', async () => {
      const s = await startWith({
        PROMETHEUS_REMOTE_WRITE_URL: url(),
        REMOTE_WRITE_CERT_FILE: clientCert,
        REMOTE_WRITE_KEY_FILE: clientKey,
      });
      await eventually(
        async () => (((await metric(s, 'sidecar_remote_write_pushes_total{result="network_error"}')) ?? 0) >= 1 ? true : undefined),
        3000,
        'a TLS failure',
      );
      expect((await request(s.managementUrl).get('/status')).body.remoteWrite.lastError).toMatch(/certificate/i);
      expect(seen).toHaveLength(0);
      await s.close();
      sidecar = undefined;
      const insecure = await startWith({ PROMETHEUS_REMOTE_WRITE_URL: url(), REMOTE_WRITE_INSECURE_SKIP_VERIFY: 'true' });
      // Without a client certificate this receiver answers 401, which is a refusal, not a TLS error.
      await eventually(
        async () => ((await metric(insecure, 'sidecar_remote_write_pushes_total{result="rejected"}')) === 1 ? true : undefined),
        3000,
        'an answer over unverified TLS',
      );
      expect(seen[0].authorized).toBe(false);
    });
  });
});

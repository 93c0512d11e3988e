import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSidecar, SidecarProcess, killLeftover } from './support/process';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort } from './support/sidecar';
import { snappyBlockDecode } from './support/snappy-block';
import { decodeWriteRequest, seriesKey } from './support/write-request-decoder';

/** The built sidecar as the metrics pusher: remote write alone, start-up checks, SIGTERM. */
describe('the sidecar process with remote write only', () => {
  const receiver = new RecordingServer();
  const dir = mkdtempSync(join(tmpdir(), 'rw-proc-'));
  let running: SidecarProcess | undefined;

  beforeAll(() => receiver.listen());
  afterAll(() => receiver.close());
  afterEach(async () => {
    await killLeftover(running);
    running = undefined;
    receiver.requests.length = 0;
  });

  it('exits 78 listing every unusable file and setting, no secret among them', async () => {
    const empty = join(dir, 'empty-token');
    writeFileSync(empty, '');
    running = spawnSidecar({
      PROMETHEUS_REMOTE_WRITE_URL: `${receiver.url}/api/v1/write`,
      REMOTE_WRITE_USERNAME: 'pusher',
      REMOTE_WRITE_PASSWORD: 'do-not-print-me',
      REMOTE_WRITE_BEARER_TOKEN_FILE: empty,
      REMOTE_WRITE_CA_FILE: join(dir, 'missing-ca.pem'),
      REMOTE_WRITE_LABELS: 'pod=',
    });
    expect(await running.exited).toBe(78);
    const err = running.stderr();
    expect(err).toMatch(/invalid configuration \(4 problems\)/);
    expect(err).toContain('REMOTE_WRITE_LABELS="pod=": label pod needs a non-empty value');
    expect(err).toContain('REMOTE_WRITE_USERNAME and REMOTE_WRITE_BEARER_TOKEN_FILE');
    expect(err).toMatch(/REMOTE_WRITE_BEARER_TOKEN_FILE=".*empty-token": the file is empty/);
    expect(err).toMatch(/REMOTE_WRITE_CA_FILE=".*missing-ca.pem": cannot read it/);
    expect(err).not.toContain('do-not-print-me');
    expect(receiver.requests).toHaveLength(0);
  });

  it('runs with nothing but PROMETHEUS_REMOTE_WRITE_URL, pushes the process metrics, and pushes once more on SIGTERM before exiting 0', async () => {
    const management = await freePort();
    running = spawnSidecar({
      PROMETHEUS_REMOTE_WRITE_URL: `${receiver.url}/api/v1/write`,
      MANAGEMENT_PORT: String(management),
      REMOTE_WRITE_LABELS: 'namespace=jobs,pod=builder-x1',
    });
    const ready = await running.ready;
    expect(ready).toMatchObject({ remoteWrite: true, relayPort: null, managementPort: management });
    await eventually(() => (receiver.requests.length >= 1 ? true : undefined), 5000, 'the start-up push');
    expect(receiver.requests[0].headers['user-agent']).toBe('pod-sidecar/0.1.0'); // read from package.json beside dist/
    const first = decodeWriteRequest(snappyBlockDecode(receiver.requests[0].body));
    const keys = first.timeseries.map((t) => seriesKey(t.labels));
    // Node.js and process default metrics, as /metrics serves them, histograms expanded.
    expect(keys.some((k) => k.startsWith('process_cpu_user_seconds_total{'))).toBe(true);
    expect(keys.some((k) => k.startsWith('nodejs_eventloop_lag_seconds{'))).toBe(true);
    expect(keys.filter((k) => k.startsWith('nodejs_gc_duration_seconds_bucket{')).every((k) => k.includes('le='))).toBe(true);
    expect(first.timeseries.every((t) => t.labels.some(([n, v]) => n === 'pod' && v === 'builder-x1'))).toBe(true);

    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(receiver.requests).toHaveLength(2);
    const last = decodeWriteRequest(snappyBlockDecode(receiver.requests[1].body));
    expect(last.timeseries[0].samples[0].timestampMs).toBeGreaterThan(first.timeseries[0].samples[0].timestampMs);
    const lines = running.lines.map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['pod-sidecar ready', 'shutting down', 'remote write: final push delivered']),
    );
  });
});

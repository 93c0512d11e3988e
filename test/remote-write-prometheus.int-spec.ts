import { Gauge, Histogram, register } from 'prom-client';
import request from 'supertest';
import { RemoteWriteService } from '../src/metrics/remote-write/remote-write.service';
import { Matrix, PrometheusServer } from './support/prometheus';
import { RecordingServer } from './support/recording-server';
import { eventually, start } from './support/sidecar';
import { waitFor } from './support/wait-for';

type Started = Awaited<ReturnType<typeof start>>;

/** A PromQL selector; JSON string quoting is valid PromQL string quoting. */
const sel = (name: string, labels: Record<string, string>) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',')}}`;

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = register.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const values = (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return values.reduce((n, v) => n + v.value, 0);
}

describe('remote write into a real Prometheus', () => {
  const prometheus = new PrometheusServer();
  const app = new RecordingServer();
  let sidecar: Started | undefined;

  beforeAll(async () => {
    await prometheus.start();
    await app.listen();
  });
  afterAll(async () => {
    await sidecar?.close();
    await prometheus.stop();
    await app.close();
  });

  it("stores the pushed series, values and extra labels: the sidecar's registry with a histogram, and a scraped target", async () => {
    app.respond = (_r, res) =>
      res
        .writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' })
        .end(
          [
            '# HELP app_jobs_total Jobs done.',
            '# TYPE app_jobs_total counter',
            'app_jobs_total{queue="a \\"b\\" \\\\ c\\nd"} 12',
            'app_temperature -3.5',
            '# TYPE app_rpc_seconds histogram',
            'app_rpc_seconds_bucket{le="0.1"} 5',
            'app_rpc_seconds_bucket{le="1"} 9',
            'app_rpc_seconds_bucket{le="+Inf"} 10',
            'app_rpc_seconds_sum 4.2',
            'app_rpc_seconds_count 10',
            '',
          ].join('\n'),
        );
    sidecar = await start({
      PROMETHEUS_REMOTE_WRITE_URL: prometheus.writeUrl,
      PUSH_INTERVAL: '1h',
      REMOTE_WRITE_LABELS: 'namespace=it,pod=pod-a',
      SCRAPE_TARGETS: `${app.url}/metrics`,
    });
    const latency = new Histogram({
      name: 'it_latency_seconds',
      help: 'Latency.',
      labelNames: ['op'],
      buckets: [0.1, 0.5, 1],
      registers: [register],
    });
    for (const v of [0.05, 0.2, 0.3, 0.7, 2]) latency.labels('read').observe(v);
    await sidecar.app.get(RemoteWriteService).pushNow();
    const own = { namespace: 'it', pod: 'pod-a', job: 'pod-sidecar' };
    const value = async (expr: string) => {
      const r = await prometheus.query(expr);
      return r.length === 1 ? Number(r[0].value[1]) : undefined;
    };
    await eventually(async () => value(sel('it_latency_seconds_count', { ...own, op: 'read' })), 5000, 'the histogram in Prometheus');

    expect(await value(sel('it_latency_seconds_bucket', { ...own, op: 'read', le: '0.1' }))).toBe(1);
    expect(await value(sel('it_latency_seconds_bucket', { ...own, op: 'read', le: '0.5' }))).toBe(3);
    expect(await value(sel('it_latency_seconds_bucket', { ...own, op: 'read', le: '1' }))).toBe(4);
    expect(await value(sel('it_latency_seconds_bucket', { ...own, op: 'read', le: '+Inf' }))).toBe(5);
    expect(await value(sel('it_latency_seconds_sum', { ...own, op: 'read' }))).toBeCloseTo(3.25);
    // The buckets are usable as Prometheus' own: histogram_quantile over them.
    expect(await value(`histogram_quantile(0.5, ${sel('it_latency_seconds_bucket', own)})`)).toBeCloseTo(0.4);

    const [pushesSeries] = await prometheus.query(sel('sidecar_remote_write_pushes_total', { ...own, result: 'success' }));
    expect(pushesSeries.metric).toEqual({
      __name__: 'sidecar_remote_write_pushes_total',
      ...own,
      instance: sidecar.config.remoteWrite!.instance,
      result: 'success',
    });

    const target = { namespace: 'it', job: 'scrape', instance: sidecar.config.remoteWrite!.scrape.targets[0].instance };
    await eventually(
      async () => value(sel('app_jobs_total', { ...target, queue: 'a "b" \\ c\nd' })),
      5000,
      'the scraped counter with an escaped label',
    );
    expect(await value(sel('app_jobs_total', { ...target, queue: 'a "b" \\ c\nd' }))).toBe(12);
    expect(await value(sel('app_temperature', target))).toBe(-3.5);
    expect(await value(`histogram_quantile(0.5, ${sel('app_rpc_seconds_bucket', target)})`)).toBeCloseTo(0.1);
    expect(await value(sel('up', target))).toBe(1);
    expect(prometheus.log).not.toMatch(/level=(error|warn).*remote/i);
    await sidecar.close();
    sidecar = undefined;
  });

  it("ends series with staleness markers: one the target stops exposing, then all of a target that stops answering, and the sidecar's own at shutdown", async () => {
    let exposed = ['app_queue_depth{queue="a"} 1', 'app_queue_depth{queue="b"} 2'];
    app.respond = (_r, res) =>
      exposed.length === 0
        ? res.writeHead(503).end()
        : res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(`${exposed.join('\n')}\n`);
    const pusher = await start({
      PROMETHEUS_REMOTE_WRITE_URL: prometheus.writeUrl,
      PUSH_INTERVAL: '1h',
      REMOTE_WRITE_LABELS: 'namespace=stale,pod=pod-s',
      SCRAPE_TARGETS: `${app.url}/metrics`,
    });
    let closed = false;
    try {
      const rw = pusher.app.get(RemoteWriteService);
      const target = { namespace: 'stale', job: 'scrape', instance: pusher.config.remoteWrite!.scrape.targets[0].instance };
      // Without markers, an instant query keeps answering a series's last sample for five minutes.
      const present = async (expr: string) => (await prometheus.query(expr)).length > 0;
      await rw.pushNow();
      await eventually(
        async () => ((await present(sel('app_queue_depth', { ...target, queue: 'b' }))) ? true : undefined),
        5000,
        'queue b stored',
      );
      expect(await present(sel('app_queue_depth', { ...target, queue: 'a' }))).toBe(true);

      exposed = ['app_queue_depth{queue="a"} 3'];
      await rw.pushNow();
      await eventually(
        async () => ((await present(sel('app_queue_depth', { ...target, queue: 'b' }))) ? undefined : true),
        5000,
        'queue b ended',
      );
      expect(await present(sel('app_queue_depth', { ...target, queue: 'a' }))).toBe(true);

      exposed = [];
      await rw.pushNow();
      await eventually(
        async () => ((await present(sel('app_queue_depth', target))) ? undefined : true),
        5000,
        'every series of the target ended',
      );
      const up = await prometheus.query(sel('up', target));
      expect(up.map((r) => r.value[1])).toEqual(['0']);

      const own = sel('sidecar_remote_write_pushes_total', { namespace: 'stale', pod: 'pod-s', result: 'success' });
      expect(await present(own)).toBe(true);
      await pusher.close();
      closed = true;
      await eventually(async () => ((await present(own)) ? undefined : true), 5000, "the sidecar's own series ended at shutdown");
      // The values before the markers are still there for range queries.
      const [range] = await prometheus.query(`max_over_time(${sel('app_queue_depth', { ...target, queue: 'a' })}[5m])`);
      expect(range.value[1]).toBe('3');
    } finally {
      if (!closed) await pusher.close();
    }
  });

  it('rides out a Prometheus restart: retries, recovers, and every push arrives but the documented queue_full drops', async () => {
    // A gauge that counts the snapshots: each push carries the next number, so gaps in
    // what Prometheus stored are exactly the pushes that never arrived.
    let snapshots = 0;
    sidecar = await start({
      PROMETHEUS_REMOTE_WRITE_URL: prometheus.writeUrl,
      PUSH_INTERVAL: '150ms',
      REMOTE_WRITE_QUEUE_SIZE: '6',
      REMOTE_WRITE_TIMEOUT: '2s',
      REMOTE_WRITE_MIN_BACKOFF: '50ms',
      REMOTE_WRITE_MAX_BACKOFF: '200ms',
      REMOTE_WRITE_LABELS: 'namespace=it,pod=pod-restart',
    });
    new Gauge({
      name: 'it_snapshot_number',
      help: 'Snapshot sequence.',
      registers: [register],
      collect() {
        this.set(++snapshots);
      },
    });
    const svc = sidecar.app.get(RemoteWriteService);
    const labels = { namespace: 'it', pod: 'pod-restart' };
    await waitFor(
      'a few pushes stored',
      async () => (await prometheus.query(sel('it_snapshot_number', labels))).length === 1 && snapshots >= 3,
      { timeoutMs: 5000 },
    );

    await prometheus.stop();
    // Down long enough for the queue (6 pushes) to overflow.
    await waitFor(
      'the queue to overflow',
      async () => (await counter('sidecar_remote_write_samples_dropped_total', { reason: 'queue_full' })) > 0,
      { timeoutMs: 8000 },
    );
    expect((await request(sidecar.managementUrl).get('/healthz')).status).toBe(200);
    expect(svc.status().consecutiveFailures).toBeGreaterThan(0);
    expect(svc.status().lastError).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);
    expect(await counter('sidecar_remote_write_pushes_total', { result: 'network_error' })).toBeGreaterThan(0);

    await prometheus.start();
    await waitFor('the queue to drain after the restart', () => svc.status().queueLength === 0 && svc.status().consecutiveFailures === 0, {
      timeoutMs: 8000,
    });
    // Series per push, counted while they are current (the final push ends them with staleness markers).
    const [perPush] = (await prometheus.query('count({namespace="it",pod="pod-restart"})')).map((r) => Number(r.value[1]));
    await sidecar.close(); // the final push
    sidecar = undefined;

    const [stored] = await prometheus.query<Matrix>(`${sel('it_snapshot_number', labels)}[10m]`);
    const numbers = stored.values.map(([, v]) => Number(v));
    const times = stored.values.map(([t]) => t);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // Everything up to the last snapshot, the final push's included, except one run of
    // the oldest pushes queued during the outage.
    expect(numbers[numbers.length - 1]).toBe(snapshots);
    const missing = Array.from({ length: snapshots }, (_, i) => i + 1).filter((n) => !numbers.includes(n));
    expect(missing.length).toBeGreaterThan(0);
    expect(missing).toEqual(Array.from({ length: missing.length }, (_, i) => missing[0] + i));
    expect(numbers.length + missing.length).toBe(snapshots);
    // And the drops are what the sidecar counted (every push has the same series). A push
    // in flight when Prometheus went down may have been stored without an answer coming
    // back: the sidecar then counts it dropped too, so it may count one push more.
    const dropped = await counter('sidecar_remote_write_samples_dropped_total', { reason: 'queue_full' });
    expect([missing.length * perPush, (missing.length + 1) * perPush]).toContain(dropped);
    expect(await counter('sidecar_remote_write_samples_dropped_total', { reason: 'rejected' })).toBe(0);
    expect(await counter('sidecar_remote_write_samples_dropped_total', { reason: 'shutdown' })).toBe(0);
  });
});

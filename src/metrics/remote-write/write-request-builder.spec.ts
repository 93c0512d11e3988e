import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { compress } from 'snappyjs';
import { decodeWriteRequest, seriesKey } from '../../../test/support/write-request-decoder';
import { snappyBlockDecode } from '../../../test/support/snappy-block';
import { parseExposition } from './exposition';
import { encodeWriteRequest } from './write-request';
import { seriesLabels, WriteRequestBuilder } from './write-request-builder';

const T = 1_760_000_000_000;
const target = [
  ['job', 'pod-sidecar'],
  ['instance', 'pod-1'],
  ['namespace', 'ns'],
] as const;

/** What a receiver would see: the request through protobuf and snappy and back. */
function received(builder: WriteRequestBuilder) {
  return decodeWriteRequest(snappyBlockDecode(compress(encodeWriteRequest(builder.build()))));
}

function valuesByKey(builder: WriteRequestBuilder): Record<string, number> {
  return Object.fromEntries(received(builder).timeseries.map((s) => [seriesKey(s.labels), s.samples[0].value]));
}

describe('seriesLabels', () => {
  it('sorts by name, puts __name__ in, drops empty values', () => {
    expect(
      seriesLabels(
        'm',
        [
          ['zeta', '1'],
          ['alpha', '2'],
          ['empty', ''],
        ],
        [['job', 'j']],
      ),
    ).toEqual([
      { name: '__name__', value: 'm' },
      { name: 'alpha', value: '2' },
      { name: 'job', value: 'j' },
      { name: 'zeta', value: '1' },
    ]);
  });

  it('keeps a sample label that clashes with a target label as exported_<name>', () => {
    const labels = seriesLabels(
      'm',
      [
        ['job', 'app'],
        ['exported_job', 'older'],
      ],
      [['job', 'sidecar']],
    );
    expect(labels).toEqual([
      { name: '__name__', value: 'm' },
      { name: 'exported_exported_job', value: 'older' },
      { name: 'exported_job', value: 'app' },
      { name: 'job', value: 'sidecar' },
    ]);
  });

  it('sorts by byte order (upper case before lower case, _ between), as Prometheus compares', () => {
    const names = seriesLabels(
      'm',
      [
        ['b', '1'],
        ['B', '1'],
        ['_a', '1'],
        ['a_', '1'],
        ['a', '1'],
      ],
      [],
    ).map((l) => l.name);
    expect(names).toEqual(['B', '__name__', '_a', 'a', 'a_', 'b']);
  });
});

describe('WriteRequestBuilder.addRegistry (prom-client registry)', () => {
  const registry = new Registry();
  const hist = new Histogram({
    name: 'req_seconds',
    help: 'Request time.',
    labelNames: ['code'],
    buckets: [0.1, 0.5, 1],
    registers: [registry],
  });
  const summary = new Summary({ name: 'size_bytes', help: 'Sizes.', percentiles: [0.5, 0.9], registers: [registry] });
  const counter = new Counter({ name: 'events_total', help: 'Events.', labelNames: ['kind', 'note'], registers: [registry] });
  const gauge = new Gauge({ name: 'temp', help: 'Temperature.', registers: [registry] });
  beforeAll(() => {
    hist.labels('200').observe(0.05);
    hist.labels('200').observe(0.7);
    hist.labels('500').observe(3);
    for (const v of [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]) summary.observe(v);
    counter.labels('a "quoted"\\ \nname', '').inc(3);
    gauge.set(-2.5);
  });

  /** The key seriesKey() gives a series of `name` with `labels` and the target labels. */
  const key = (name: string, labels: Record<string, string> = {}) => {
    const all = { ...Object.fromEntries(target), ...labels };
    return `${name}{${Object.keys(all)
      .sort()
      .map((n) => `${n}=${JSON.stringify(all[n])}`)
      .join(',')}}`;
  };

  it('expands histograms into _bucket{le}, _sum and _count, with le as /metrics writes it', async () => {
    const b = new WriteRequestBuilder();
    b.addRegistry(await registry.getMetricsAsJSON(), target, T);
    const v = valuesByKey(b);
    expect(v[key('req_seconds_bucket', { code: '200', le: '0.1' })]).toBe(1);
    expect(v[key('req_seconds_bucket', { code: '200', le: '0.5' })]).toBe(1);
    expect(v[key('req_seconds_bucket', { code: '200', le: '1' })]).toBe(2);
    expect(v[key('req_seconds_bucket', { code: '200', le: '+Inf' })]).toBe(2);
    expect(v[key('req_seconds_sum', { code: '200' })]).toBeCloseTo(0.75);
    expect(v[key('req_seconds_count', { code: '200' })]).toBe(2);
    expect(v[key('req_seconds_bucket', { code: '500', le: '1' })]).toBe(0);
    expect(v[key('req_seconds_bucket', { code: '500', le: '+Inf' })]).toBe(1);
    expect(Object.keys(v).filter((k) => k.startsWith('req_seconds'))).toHaveLength(2 * 6);
    // The same le text as the /metrics page, so that a pushed and a scraped series are one.
    const page = await registry.getSingleMetricAsString('req_seconds');
    for (const le of ['0.1', '0.5', '1', '+Inf']) expect(page).toContain(`le="${le}"`);
  });

  it('expands summaries into quantile series, _sum and _count', async () => {
    const b = new WriteRequestBuilder();
    b.addRegistry(await registry.getMetricsAsJSON(), target, T);
    const v = valuesByKey(b);
    expect(v[key('size_bytes', { quantile: '0.5' })]).toBe(55);
    expect(v[key('size_bytes', { quantile: '0.9' })]).toBeGreaterThanOrEqual(90);
    expect(v[key('size_bytes_sum')]).toBe(550);
    expect(v[key('size_bytes_count')]).toBe(10);
  });

  it('keeps label values byte for byte (quotes, backslashes, newlines) and leaves empty ones out', async () => {
    const b = new WriteRequestBuilder();
    b.addRegistry(await registry.getMetricsAsJSON(), target, T);
    const series = received(b).timeseries.find((s) => s.labels.some(([, v]) => v === 'events_total'))!;
    expect(series.labels).toEqual([
      ['__name__', 'events_total'],
      ['instance', 'pod-1'],
      ['job', 'pod-sidecar'],
      ['kind', 'a "quoted"\\ \nname'],
      ['namespace', 'ns'],
    ]);
    expect(series.samples).toEqual([{ value: 3, timestampMs: T }]);
  });

  it('gives every series one sample at the snapshot time, sorted labels, and metadata per family', async () => {
    const b = new WriteRequestBuilder();
    b.addRegistry(await registry.getMetricsAsJSON(), target, T);
    const req = received(b);
    for (const s of req.timeseries) {
      expect(s.samples).toHaveLength(1);
      expect(s.samples[0].timestampMs).toBe(T);
      const names = s.labels.map(([n]) => n);
      expect(names).toEqual([...names].sort());
      expect(new Set(names).size).toBe(names.length);
      expect(s.labels.every(([, v]) => v !== '')).toBe(true);
    }
    expect(valuesByKey(b)[key('temp')]).toBe(-2.5);
    expect(req.metadata).toEqual(
      expect.arrayContaining([
        { type: 4, family: 'req_seconds', help: 'Request time.', unit: '' },
        { type: 3, family: 'size_bytes', help: 'Sizes.', unit: '' },
        { type: 1, family: 'events_total', help: 'Events.', unit: '' },
        { type: 2, family: 'temp', help: 'Temperature.', unit: '' },
      ]),
    );
    expect(b.sampleCount).toBe(req.timeseries.length);
  });
});

describe('WriteRequestBuilder.addExposition (scraped targets)', () => {
  it('takes the scrape time unless a line has its own timestamp; keeps the first of duplicate series', () => {
    const exposition = parseExposition(
      [
        '# HELP http_requests_total Requests.',
        '# TYPE http_requests_total counter',
        'http_requests_total{method="GET",job="app"} 7',
        'http_requests_total{method="POST"} 3 1700000000000',
        'http_requests_total{method="GET",job="app"} 8',
      ].join('\n'),
    );
    const b = new WriteRequestBuilder();
    b.addExposition(
      exposition,
      [
        ['job', 'scrape'],
        ['instance', 'pod-1:8080'],
      ],
      T,
    );
    const req = received(b);
    expect(req.timeseries.map((s) => [seriesKey(s.labels), s.samples])).toEqual([
      ['http_requests_total{exported_job="app",instance="pod-1:8080",job="scrape",method="GET"}', [{ value: 7, timestampMs: T }]],
      ['http_requests_total{instance="pod-1:8080",job="scrape",method="POST"}', [{ value: 3, timestampMs: 1_700_000_000_000 }]],
    ]);
    expect(b.duplicates).toBe(1);
    expect(req.metadata).toEqual([{ type: 1, family: 'http_requests_total', help: 'Requests.', unit: '' }]);
  });
});

describe('staleness markers', () => {
  const instance = [
    ['job', 'scrape'],
    ['instance', 'pod-1:8080'],
  ] as const;
  const scrape = (...lines: string[]) => {
    const b = new WriteRequestBuilder();
    b.addExposition(parseExposition(lines.join('\n')), instance, T);
    return b;
  };

  it('marks a series stale once, in the first push without it; a series with its own timestamp never', () => {
    const first = scrape('jobs_running{queue="a"} 1', 'jobs_running{queue="b"} 2', 'imported_total 5 1700000000000');
    const second = scrape('jobs_running{queue="a"} 3');
    expect(second.markEnded(first.tracked, T + 10)).toBe(1);
    expect(received(second).timeseries.map((s) => [seriesKey(s.labels), s.samples])).toEqual([
      ['jobs_running{instance="pod-1:8080",job="scrape",queue="a"}', [{ value: 3, timestampMs: T }]],
      ['jobs_running{instance="pod-1:8080",job="scrape",queue="b"}', [{ value: NaN, timestampMs: T + 10, stale: true }]],
    ]);
    expect(second.sampleCount).toBe(2);
    const third = scrape('jobs_running{queue="a"} 4');
    expect(third.markEnded(second.tracked, T + 20)).toBe(0);
  });

  it('ends every series of a target that stops answering, in the push of the failed scrape', () => {
    const up = scrape('jobs_running{queue="a"} 1', 'jobs_running{queue="b"} 2');
    const down = new WriteRequestBuilder();
    expect(down.markEnded(up.tracked, T + 10)).toBe(2);
    expect(received(down).timeseries.every((s) => s.samples.length === 1 && s.samples[0].stale === true)).toBe(true);
    expect(down.tracked.size).toBe(0);
  });

  it('at shutdown ends each series right after its final sample', () => {
    const last = scrape('jobs_running{queue="a"} 7', 'imported_total 5 1700000000000');
    last.markAllEnded(T + 1);
    expect(received(last).timeseries.map((s) => s.samples)).toEqual([
      [
        { value: 7, timestampMs: T },
        { value: NaN, timestampMs: T + 1, stale: true },
      ],
      [{ value: 5, timestampMs: 1_700_000_000_000 }],
    ]);
    expect(last.sampleCount).toBe(3);
  });
});

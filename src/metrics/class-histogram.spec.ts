import { Histogram, Registry } from 'prom-client';
import { ClassHistogram } from './class-histogram';

describe('ClassHistogram', () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const classes = ['1xx', '2xx', '3xx', '4xx', '5xx'];
  const observations: Array<[string, number]> = [
    ['2xx', 0.0004],
    ['2xx', 0.001],
    ['2xx', 0.05],
    ['5xx', 3],
    ['2xx', 0.2],
    ['4xx', 0.01],
  ];

  it("is rendered by the registry as prom-client's own Histogram is, text and JSON", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new ClassHistogram('d_seconds', 'help text', 'status_class', classes, buckets).registerIn(ours);
    const reference = new Histogram({ name: 'd_seconds', help: 'help text', labelNames: ['status_class'], buckets, registers: [theirs] });
    for (const [c, v] of observations) {
      fast.observe(classes.indexOf(c), v);
      reference.labels(c).observe(v);
    }
    // The same lines; prom-client lists label sets in the order they were first seen, which no scraper reads.
    const lines = async (r: Registry) => (await r.metrics()).split('\n').sort();
    expect(await lines(ours)).toEqual(await lines(theirs));
    const key = (v: { metricName?: string; labels: object }) => `${v.metricName} ${JSON.stringify(v.labels)}`;
    const json = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({ ...m, values: [...m.values].sort((x, y) => key(x).localeCompare(key(y))) }));
    expect(await json(ours)).toEqual(await json(theirs));
  });

  it('shows no series before a first observation, and none after a reset', async () => {
    const registry = new Registry();
    const h = new ClassHistogram('d_seconds', 'h', 'status_class', classes, buckets).registerIn(registry);
    expect(await registry.metrics()).not.toContain('d_seconds_count');
    h.observe(1, 0.5);
    expect(await registry.metrics()).toContain('d_seconds_count{status_class="2xx"} 1');
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('d_seconds_count');
  });

  it('takes the place of a metric registered under its name', async () => {
    const registry = new Registry();
    new ClassHistogram('d_seconds', 'old', 'status_class', classes, buckets).registerIn(registry);
    new ClassHistogram('d_seconds', 'new', 'status_class', classes, buckets).registerIn(registry);
    expect(await registry.metrics()).toContain('# HELP d_seconds new');
  });
});

import { Histogram, Registry } from 'prom-client';
import { countsBy, latencyBy, quantile, samplesOf } from './metric-figures';

describe('quantile (as PromQL histogram_quantile estimates it)', () => {
  const buckets: Array<[number, number]> = [
    [0.1, 50],
    [0.5, 90],
    [1, 100],
    [Infinity, 100],
  ];

  it('interpolates linearly inside the bucket that holds the rank', () => {
    expect(quantile(0.5, buckets)).toBeCloseTo(0.1);
    expect(quantile(0.25, buckets)).toBeCloseTo(0.05);
    expect(quantile(0.7, buckets)).toBeCloseTo(0.3);
    expect(quantile(0.95, buckets)).toBeCloseTo(0.75);
  });

  it('answers the highest finite bound for a rank in the +Inf bucket, NaN with no observation', () => {
    expect(
      quantile(0.99, [
        [0.1, 1],
        [Infinity, 10],
      ]),
    ).toBe(0.1);
    expect(
      quantile(0.5, [
        [0.1, 0],
        [Infinity, 0],
      ]),
    ).toBeNaN();
  });
});

describe('latencyBy and countsBy on what prom-client exposes', () => {
  it('gives count, mean and percentiles in ms per label value that has observations', async () => {
    const registry = new Registry();
    const h = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['class'], buckets: [0.01, 0.1, 1], registers: [registry] });
    h.labels('5xx'); // exists, never observed
    for (let i = 0; i < 9; i++) h.labels('2xx').observe(0.005);
    h.labels('2xx').observe(0.5);
    const figures = latencyBy('x_seconds', await samplesOf('x_seconds', registry), 'class');
    expect(Object.keys(figures)).toEqual(['2xx']);
    expect(figures['2xx']).toEqual({ count: 10, meanMs: 54.5, p50Ms: 5.6, p90Ms: 10, p99Ms: 910 });
  });

  it('sums a counter by one label, and reads nothing for a metric that is not registered', async () => {
    expect(
      countsBy(
        [
          { labels: { outcome: 'a', x: '1' }, value: 2 },
          { labels: { outcome: 'a', x: '2' }, value: 3 },
          { labels: { outcome: 'b' }, value: 0 },
          { labels: {}, value: 9 },
        ],
        'outcome',
      ),
    ).toEqual({ a: 5, b: 0 });
    expect(await samplesOf('absent_total', new Registry())).toEqual([]);
  });
});

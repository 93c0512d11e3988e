import { register as defaultRegistry, type Registry } from 'prom-client';

/** A sample as prom-client's `get()` returns it. */
export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A counter's values keyed by one label, e.g. requests by outcome. */
export function countsBy(samples: readonly Sample[], label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const key = s.labels[label];
    if (key !== undefined) out[String(key)] = (out[String(key)] ?? 0) + s.value;
  }
  return out;
}

export interface LatencyFigures {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

/**
 * A histogram's figures per value of `label`, for the values that have observations:
 * count, mean, and the 50th, 90th and 99th percentiles estimated from the buckets the
 * way PromQL's histogram_quantile does (linear within the bucket; a quantile falling in
 * the +Inf bucket is the highest finite bound). Milliseconds, rounded to 0.1 ms.
 */
export function latencyBy(name: string, samples: readonly Sample[], label: string): Record<string, LatencyFigures> {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum: number; count: number }>();
  const group = (key: string) => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [], sum: 0, count: 0 }));
    return g;
  };
  for (const s of samples) {
    const key = s.labels[label];
    if (key === undefined) continue;
    const g = group(String(key));
    if (s.metricName === `${name}_bucket`) g.buckets.push([s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value]);
    else if (s.metricName === `${name}_sum`) g.sum = s.value;
    else if (s.metricName === `${name}_count`) g.count = s.value;
  }
  const out: Record<string, LatencyFigures> = {};
  for (const [key, g] of groups) {
    if (g.count === 0) continue;
    const buckets = g.buckets.sort((a, b) => a[0] - b[0]);
    const ms = (seconds: number) => Math.round(seconds * 10_000) / 10;
    out[key] = {
      count: g.count,
      meanMs: ms(g.sum / g.count),
      p50Ms: ms(quantile(0.5, buckets)),
      p90Ms: ms(quantile(0.9, buckets)),
      p99Ms: ms(quantile(0.99, buckets)),
    };
  }
  return out;
}

/** histogram_quantile over cumulative buckets sorted by bound, the last one +Inf. */
export function quantile(q: number, buckets: ReadonlyArray<readonly [number, number]>): number {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      if (count === lowerCount) return bound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    [lowerBound, lowerCount] = [bound, count];
  }
  return lowerBound;
}

/** The samples of a registered metric, or none when it is not registered. */
export async function samplesOf(name: string, registry: Registry = defaultRegistry): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  return (await metric.get()).values as Sample[];
}

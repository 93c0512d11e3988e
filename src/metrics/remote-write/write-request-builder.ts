import type { MetricObjectWithValues, MetricValue, MetricValueWithName } from 'prom-client';
import type { Exposition, FamilyType } from './exposition';
import type { Label, MetricMetadata, MetricType, TimeSeries, WriteRequest } from './write-request';

/** Labels every series of one source gets (job, instance and the configured extra labels). */
export type TargetLabels = ReadonlyArray<readonly [name: string, value: string]>;

/**
 * The label set of one series, as the remote-write 1.0 specification requires it:
 * `__name__` first among equals, sorted by name, each name once, no empty values.
 * A sample label that clashes with a target label is kept as `exported_<name>`, as a
 * Prometheus scrape does without honor_labels: the sidecar's configuration wins.
 */
export function seriesLabels(name: string, sampleLabels: Iterable<readonly [string, string]>, target: TargetLabels): Label[] {
  // Arrays and linear scans: a series has a handful of labels, and this runs per series.
  const labels: Label[] = [{ name: '__name__', value: name }];
  for (const [n, v] of target) if (v !== '') labels.push({ name: n, value: v });
  for (const [n, v] of sampleLabels) {
    if (v === '' || n === '__name__') continue;
    let key = n;
    while (labels.some((l) => l.name === key)) key = `exported_${key}`;
    labels.push({ name: key, value: v });
  }
  for (let i = 1; i < labels.length; i++) {
    const l = labels[i];
    let j = i - 1;
    while (j >= 0 && labels[j].name > l.name) {
      labels[j + 1] = labels[j];
      j--;
    }
    labels[j + 1] = l;
  }
  return labels;
}

const REGISTRY_TYPES: Record<string, MetricType> = { counter: 'counter', gauge: 'gauge', histogram: 'histogram', summary: 'summary' };
const EXPOSITION_TYPES: Record<FamilyType, MetricType> = {
  counter: 'counter',
  gauge: 'gauge',
  histogram: 'histogram',
  summary: 'summary',
  untyped: 'unknown',
};

type RegistryValue = (MetricValue<string> | MetricValueWithName<string>) & { sharedLabels?: Record<string, string | number> };

/**
 * Collects the series of one push. A label set seen twice keeps its first sample: a
 * receiver refuses a whole request that holds two different values for one series and
 * timestamp, and one sloppy exposition must not cost the rest of the push.
 */
export class WriteRequestBuilder {
  private readonly series = new Map<string, TimeSeries>();
  private readonly metadata = new Map<string, MetricMetadata>();
  /** Series whose sample took the push's time (not one of their own): those that get staleness markers when they end. */
  private readonly current = new Map<string, Label[]>();
  private samples = 0;
  duplicates = 0;

  get sampleCount(): number {
    return this.samples;
  }

  /** The series of this push that a later push marks stale when they are gone. */
  get tracked(): ReadonlyMap<string, Label[]> {
    return this.current;
  }

  /** `ownTimestamp`: the sample came with its own time; as in Prometheus, such a series is never marked stale. */
  add(
    name: string,
    sampleLabels: Iterable<readonly [string, string]>,
    target: TargetLabels,
    value: number,
    timestampMs: number,
    ownTimestamp = false,
  ): void {
    const labels = seriesLabels(name, sampleLabels, target);
    let key = '';
    for (const l of labels) key += `${l.name}\u0000${l.value}\u0000`;
    if (this.series.has(key)) {
      this.duplicates++;
      return;
    }
    this.series.set(key, { labels, samples: [{ value, timestampMs }] });
    this.samples++;
    if (!ownTimestamp) this.current.set(key, labels);
  }

  /**
   * Staleness markers at `timestampMs` for each series of the previous push of this source
   * that this push does not have, as a Prometheus scrape writes them: queries stop showing
   * the series at once instead of five minutes later. Returns how many.
   */
  markEnded(previous: ReadonlyMap<string, Label[]>, timestampMs: number): number {
    let ended = 0;
    for (const [key, labels] of previous) {
      if (this.series.has(key)) continue;
      this.series.set(key, { labels, samples: [{ value: NaN, timestampMs, stale: true }] });
      ended++;
    }
    this.samples += ended;
    return ended;
  }

  /** A last staleness marker after each tracked series' sample (the source is going away). */
  markAllEnded(timestampMs: number): void {
    for (const key of this.current.keys()) {
      const samples = this.series.get(key)!.samples;
      if (samples[samples.length - 1].timestampMs >= timestampMs) continue;
      samples.push({ value: NaN, timestampMs, stale: true });
      this.samples++;
    }
  }

  describe(family: string, type: MetricType, help: string | undefined): void {
    if (!this.metadata.has(family)) this.metadata.set(family, { family, type, help: help ?? '' });
  }

  /**
   * prom-client's `getMetricsAsJSON()`: histograms come as their `_bucket` (with `le`),
   * `_sum` and `_count` values, summaries as `quantile`, `_sum` and `_count`; each is a
   * series of its own here, with the label values written as prom-client's /metrics does.
   */
  addRegistry(metrics: MetricObjectWithValues<MetricValue<string>>[], target: TargetLabels, timestampMs: number): void {
    for (const metric of metrics) {
      this.describe(metric.name, REGISTRY_TYPES[metric.type] ?? 'unknown', metric.help);
      for (const v of metric.values as RegistryValue[]) {
        const name = 'metricName' in v && v.metricName ? v.metricName : metric.name;
        const labels: Array<[string, string]> = [];
        for (const n in v.labels) if (v.labels[n] !== undefined) labels.push([n, String(v.labels[n])]);
        // Histograms may keep their own labels apart from le (prom-client's sharedLabels).
        if (v.sharedLabels) for (const n in v.sharedLabels) if (!(n in v.labels)) labels.push([n, String(v.sharedLabels[n])]);
        this.add(name, labels, target, Number(v.value), timestampMs);
      }
    }
  }

  /** A parsed scrape; samples without their own timestamp take the scrape's. */
  addExposition(exposition: Exposition, target: TargetLabels, scrapedAtMs: number): void {
    for (const [family, f] of exposition.families) this.describe(family, EXPOSITION_TYPES[f.type], f.help);
    for (const s of exposition.samples)
      this.add(s.name, s.labels, target, s.value, s.timestampMs ?? scrapedAtMs, s.timestampMs !== undefined);
  }

  build(): WriteRequest {
    return { timeseries: [...this.series.values()], metadata: [...this.metadata.values()] };
  }
}

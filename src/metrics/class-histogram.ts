import { type Metric, register as defaultRegistry, type Registry } from 'prom-client';

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
  /** As prom-client's buckets carry it (none here). */
  exemplar?: null;
}

/**
 * A histogram with one label whose values are all known up front (a status class, say),
 * for a path taken on every request: an observation is a search of the buckets and three
 * additions on typed arrays. prom-client's own Histogram turns each bucket bound into an
 * object key and hashes the labels on every observation, ~20 times the work. The registry
 * renders it exactly as it renders its own: cumulative `_bucket` series with `le`, then
 * `_sum` and `_count`, for each label value observed at least once.
 */
export class ClassHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Per label value: the count of each bucket (not cumulative), then the overflow one. */
  private readonly counts: Float64Array[];
  private readonly sums: Float64Array;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly labelValues: readonly string[],
    private readonly upperBounds: readonly number[],
  ) {
    this.counts = labelValues.map(() => new Float64Array(upperBounds.length + 1));
    this.sums = new Float64Array(labelValues.length);
  }

  /** Adds `value` under the label value at `labelIndex` (an index into `labelValues`). */
  observe(labelIndex: number, value: number): void {
    const bounds = this.upperBounds;
    let b = 0;
    while (b < bounds.length && value > bounds[b]) b++;
    this.counts[labelIndex][b]++;
    this.sums[labelIndex] += value;
  }

  /** Registers it in `registry`, in place of anything registered under its name. */
  registerIn(registry: Registry = defaultRegistry): this {
    registry.removeSingleMetric(this.name);
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    this.labelValues.forEach((labelValue, i) => {
      const counts = this.counts[i];
      let total = 0;
      for (const c of counts) total += c;
      if (total === 0) return;
      let acc = 0;
      this.upperBounds.forEach((le, b) => {
        acc += counts[b];
        values.push({ labels: { le, [this.labelName]: labelValue }, value: acc, metricName: bucket, exemplar: null });
      });
      values.push({ labels: { le: '+Inf', [this.labelName]: labelValue }, value: total, metricName: bucket, exemplar: null });
      values.push({ labels: { [this.labelName]: labelValue }, value: this.sums[i], metricName: `${this.name}_sum` });
      values.push({ labels: { [this.labelName]: labelValue }, value: total, metricName: `${this.name}_count` });
    });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    for (const c of this.counts) c.fill(0);
    this.sums.fill(0);
  }
}

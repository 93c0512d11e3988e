import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';
import { PUSH_RESULTS, PushResult } from './delivery-policy';

export const DROP_REASONS = ['queue_full', 'rejected', 'shutdown'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const REMOTE_WRITE_METRICS = [
  makeCounterProvider({
    name: 'sidecar_remote_write_pushes_total',
    help: 'Remote-write requests by result: success (2xx), rejected (other 4xx, dropped), throttled (429, retried), server_error (5xx, retried), network_error (no answer or timeout, retried).',
    labelNames: ['result'],
  }),
  makeCounterProvider({
    name: 'sidecar_remote_write_samples_sent_total',
    help: 'Samples in remote-write requests that the receiver accepted.',
  }),
  makeCounterProvider({
    name: 'sidecar_remote_write_samples_dropped_total',
    help: 'Samples given up by reason: queue_full (oldest push dropped while the receiver was away), rejected (the receiver refused the push with a 4xx other than 429), shutdown (still queued when the final push ran out of time).',
    labelNames: ['reason'],
  }),
  makeGaugeProvider({
    name: 'sidecar_remote_write_queue_length',
    help: 'Requests waiting for delivery (one per source and push: the sidecar, each scrape target; a target that did not answer sends only staleness markers, once), the one being sent included.',
  }),
  makeGaugeProvider({
    name: 'sidecar_remote_write_last_success_timestamp_seconds',
    help: 'Unix time of the last push the receiver accepted; 0 before the first.',
  }),
  makeGaugeProvider({
    name: 'sidecar_scrape_target_up',
    help: 'Whether the last scrape of a SCRAPE_TARGETS URL succeeded (1) or not (0), by its instance label.',
    labelNames: ['instance'],
  }),
  makeCounterProvider({
    name: 'sidecar_scrape_failures_total',
    help: 'Failed scrapes of a SCRAPE_TARGETS URL (no answer, non-2xx, or an exposition that could not be parsed), by its instance label.',
    labelNames: ['instance'],
  }),
];

/** Remote write's own metrics, with every label child made (and at 0) from the start. */
@Injectable()
export class RemoteWriteMetrics {
  private readonly results: Record<PushResult, Counter.Internal>;
  private readonly drops: Record<DropReason, Counter.Internal>;

  constructor(
    @InjectMetric('sidecar_remote_write_pushes_total') pushes: Counter<'result'>,
    @InjectMetric('sidecar_remote_write_samples_sent_total') private readonly sent: Counter,
    @InjectMetric('sidecar_remote_write_samples_dropped_total') dropped: Counter<'reason'>,
    @InjectMetric('sidecar_remote_write_queue_length') private readonly queueLength: Gauge,
    @InjectMetric('sidecar_remote_write_last_success_timestamp_seconds') private readonly lastSuccess: Gauge,
    @InjectMetric('sidecar_scrape_target_up') private readonly targetUp: Gauge<'instance'>,
    @InjectMetric('sidecar_scrape_failures_total') private readonly scrapeFailures: Counter<'instance'>,
  ) {
    this.results = Object.fromEntries(PUSH_RESULTS.map((r) => [r, pushes.labels(r)])) as Record<PushResult, Counter.Internal>;
    for (const c of Object.values(this.results)) c.inc(0);
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, dropped.labels(r)])) as Record<DropReason, Counter.Internal>;
    for (const c of Object.values(this.drops)) c.inc(0);
    sent.inc(0);
    queueLength.set(0);
    lastSuccess.set(0);
  }

  /** Makes the per-target series exist before the first scrape. */
  targets(instances: string[]): void {
    for (const i of instances) {
      this.targetUp.labels(i).set(0);
      this.scrapeFailures.labels(i).inc(0);
    }
  }

  pushed(result: PushResult, samples: number, atMs: number): void {
    this.results[result].inc();
    if (result === 'success') {
      this.sent.inc(samples);
      this.lastSuccess.set(atMs / 1000);
    }
  }

  dropped(reason: DropReason, samples: number): void {
    this.drops[reason].inc(samples);
  }

  queued(length: number): void {
    this.queueLength.set(length);
  }

  scraped(instance: string, up: boolean): void {
    this.targetUp.labels(instance).set(up ? 1 : 0);
    if (!up) this.scrapeFailures.labels(instance).inc();
  }
}

import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Histogram } from 'prom-client';

export const RECEIPT_RESULTS = ['stored', 'duplicate', 'full', 'unavailable'] as const;
export type ReceiptResult = (typeof RECEIPT_RESULTS)[number];
export const DELIVERY_RESULTS = ['delivered', 'retried', 'dead_lettered', 'unreadable'] as const;
export type DeliveryResult = (typeof DELIVERY_RESULTS)[number];

export const SPOOL_METRICS = [
  makeCounterProvider({
    name: 'sidecar_spool_receipts_total',
    help: 'Events offered to the spool by result: stored (202), duplicate (202 with the first id, not stored again), full (507), unavailable (503: the write failed or the spool is closing).',
    labelNames: ['result'],
  }),
  makeCounterProvider({
    name: 'sidecar_spool_deliveries_total',
    help: 'Delivery attempts by result: delivered (2xx), retried (network error, timeout, 408, 429, 5xx), dead_lettered (other answers, or SPOOL_MAX_AGE passed), unreadable (the record no longer checks out on disk).',
    labelNames: ['result'],
  }),
  makeCounterProvider({
    name: 'sidecar_spool_compactions_total',
    help: 'Segments compacted: their live records copied to the end of the log so that the space of their finished ones comes back.',
  }),
  makeCounterProvider({
    name: 'sidecar_spool_compaction_moved_bytes_total',
    help: 'Bytes of live records copied by compaction (what compaction costs in writes).',
  }),
  makeHistogramProvider({
    name: 'sidecar_spool_delivery_delay_seconds',
    help: 'Time from receipt (or requeue) to delivery, for delivered events.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400],
  }),
];

/** The spool's counters, with their label children made once. */
@Injectable()
export class SpoolMetrics {
  private readonly receipts: Record<ReceiptResult, Counter.Internal>;
  private readonly deliveries: Record<DeliveryResult, Counter.Internal>;

  constructor(
    @InjectMetric('sidecar_spool_receipts_total') receipts: Counter<'result'>,
    @InjectMetric('sidecar_spool_deliveries_total') deliveries: Counter<'result'>,
    @InjectMetric('sidecar_spool_delivery_delay_seconds') private readonly delay: Histogram,
    @InjectMetric('sidecar_spool_compactions_total') private readonly compactions: Counter,
    @InjectMetric('sidecar_spool_compaction_moved_bytes_total') private readonly compactedBytes: Counter,
  ) {
    this.receipts = Object.fromEntries(RECEIPT_RESULTS.map((r) => [r, receipts.labels(r)])) as Record<ReceiptResult, Counter.Internal>;
    this.deliveries = Object.fromEntries(DELIVERY_RESULTS.map((r) => [r, deliveries.labels(r)])) as Record<
      DeliveryResult,
      Counter.Internal
    >;
    for (const c of [...Object.values(this.receipts), ...Object.values(this.deliveries)]) c.inc(0);
  }

  receipt(result: ReceiptResult): void {
    this.receipts[result].inc();
  }

  delivery(result: DeliveryResult): void {
    this.deliveries[result].inc();
  }

  compacted(movedBytes: number): void {
    this.compactions.inc();
    this.compactedBytes.inc(movedBytes);
  }

  delivered(delaySeconds: number): void {
    this.deliveries.delivered.inc();
    this.delay.observe(delaySeconds);
  }
}

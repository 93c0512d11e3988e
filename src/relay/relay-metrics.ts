import { Injectable, Module } from '@nestjs/common';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';
import { ClassHistogram } from '../metrics/class-histogram';

export const RELAY_OUTCOMES = [
  'relayed',
  'timeout',
  'unreachable',
  'too_large',
  'busy',
  'no_destination',
  'client_closed',
  'health_event',
  'spooled',
  'spool_full',
  'spool_unavailable',
  'unauthorized',
] as const;
export type RelayOutcome = (typeof RELAY_OUTCOMES)[number];
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export const RELAY_METRICS = [
  makeCounterProvider({
    name: 'smee_events_relayed_total',
    help: 'Events relayed that the downstream answered (any status), as smee-sidecar counts them; in spool mode, delivery attempts the destination answered.',
  }),
  makeCounterProvider({
    name: 'sidecar_relay_requests_total',
    help: 'Requests on the relay port by outcome: relayed, timeout (504), unreachable (502), too_large (413), busy (503: no room for the body within RELAY_MAX_BUFFERED_BYTES), no_destination (503), client_closed, health_event; in spool mode spooled (202), spool_full (507), spool_unavailable (503); with webhook secrets, unauthorized (401: no valid proof of origin).',
    labelNames: ['outcome'],
  }),
];

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The relay's metrics, with their label children made once so that the hot path only adds. */
@Injectable()
export class RelayMetrics {
  private readonly outcomes: Record<RelayOutcome, Counter.Internal>;
  /** Observed on every request: a histogram without prom-client's per-observation label hashing. */
  private readonly durations = new ClassHistogram(
    'sidecar_relay_duration_seconds',
    'Time from a request complete at the relay to the end of its answer, by the class of status the caller got.',
    'status_class',
    STATUS_CLASSES,
    DURATION_BUCKETS,
  ).registerIn();

  constructor(
    @InjectMetric('smee_events_relayed_total') private readonly relayedTotal: Counter,
    @InjectMetric('sidecar_relay_requests_total') requests: Counter<'outcome'>,
  ) {
    this.outcomes = Object.fromEntries(RELAY_OUTCOMES.map((o) => [o, requests.labels(o)])) as Record<RelayOutcome, Counter.Internal>;
    for (const child of Object.values(this.outcomes)) child.inc(0);
    relayedTotal.inc(0);
  }

  relayed(status: number, seconds: number): void {
    this.relayedTotal.inc();
    this.outcomes.relayed.inc();
    this.durations.observe(Math.min(4, Math.max(0, Math.floor(status / 100) - 1)), seconds);
  }

  failed(outcome: 'timeout' | 'unreachable', seconds: number): void {
    this.outcomes[outcome].inc();
    this.durations.observe(4, seconds); // 502 or 504
  }

  /** A spool-mode answer to the caller: the spool's 202, 507 or 503, timed like a relayed answer. */
  spoolAnswered(outcome: 'spooled' | 'spool_full' | 'spool_unavailable', status: number, seconds: number): void {
    this.outcomes[outcome].inc();
    this.durations.observe(Math.floor(status / 100) - 1, seconds);
  }

  /** A spooled event's delivery attempt that the destination answered (any status). */
  deliveryAnswered(): void {
    this.relayedTotal.inc();
  }

  count(outcome: RelayOutcome): void {
    this.outcomes[outcome].inc();
  }
}

/** The relay's counters and timings, shared with the spool, which delivers on the relay's behalf. */
@Module({ providers: [RelayMetrics, ...RELAY_METRICS], exports: [RelayMetrics] })
export class RelayMetricsModule {}

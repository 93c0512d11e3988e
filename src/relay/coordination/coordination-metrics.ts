import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';

export const COORDINATION_OUTCOMES = [
  'delivering',
  'held',
  'not_held',
  'already_delivered',
  'confirmed',
  'taken_over',
  'released',
  'uncoordinated',
] as const;
export type CoordinationOutcome = (typeof COORDINATION_OUTCOMES)[number];
export const DUPLICATE_REASONS = ['lease_lapsed', 'redis_unavailable'] as const;
export type DuplicateReason = (typeof DUPLICATE_REASONS)[number];

export const COORDINATION_METRICS = [
  makeCounterProvider({
    name: 'sidecar_coordination_events_total',
    help: 'Events under coordination through Redis by what this replica did: delivering (won the claim), held (another replica claimed it; kept here until that one confirms), not_held (the same, with REDIS_HOLD_MAX_BYTES full), already_delivered (arrived after its delivery was confirmed), confirmed (a held event delivered elsewhere), taken_over (a held event whose claim lapsed or was given up, delivered here), released (this replica could not deliver it; others may), uncoordinated (delivered without asking Redis: down, slow or starting).',
    labelNames: ['outcome'],
  }),
  makeCounterProvider({
    name: 'sidecar_coordination_possible_duplicates_total',
    help: 'Deliveries that may repeat one made by another replica: lease_lapsed (a claimer stopped renewing, maybe after it delivered), redis_unavailable (delivered while Redis could not be asked).',
    labelNames: ['reason'],
  }),
  makeCounterProvider({
    name: 'sidecar_coordination_outages_total',
    help: 'Times Redis became unreachable or slower than REDIS_TIMEOUT, so that this replica went on without coordination.',
  }),
  makeGaugeProvider({
    name: 'sidecar_coordination_redis_up',
    help: '1 while this replica coordinates through Redis, 0 while it delivers on its own (Redis down, slow or not yet reached).',
  }),
  makeGaugeProvider({ name: 'sidecar_coordination_held_events', help: 'Events held in memory for another replica that claimed them.' }),
  makeGaugeProvider({
    name: 'sidecar_coordination_held_bytes',
    help: 'Body bytes of the held events, counted against REDIS_HOLD_MAX_BYTES.',
  }),
];

@Injectable()
export class CoordinationMetrics {
  private readonly outcomes: Record<CoordinationOutcome, Counter.Internal>;
  private readonly duplicates: Record<DuplicateReason, Counter.Internal>;

  constructor(
    @InjectMetric('sidecar_coordination_events_total') events: Counter<'outcome'>,
    @InjectMetric('sidecar_coordination_possible_duplicates_total') duplicates: Counter<'reason'>,
    @InjectMetric('sidecar_coordination_outages_total') private readonly outages: Counter,
    @InjectMetric('sidecar_coordination_redis_up') private readonly up: Gauge,
    @InjectMetric('sidecar_coordination_held_events') private readonly heldEvents: Gauge,
    @InjectMetric('sidecar_coordination_held_bytes') private readonly heldBytes: Gauge,
  ) {
    this.outcomes = Object.fromEntries(COORDINATION_OUTCOMES.map((o) => [o, events.labels(o)])) as Record<
      CoordinationOutcome,
      Counter.Internal
    >;
    this.duplicates = Object.fromEntries(DUPLICATE_REASONS.map((r) => [r, duplicates.labels(r)])) as Record<
      DuplicateReason,
      Counter.Internal
    >;
    for (const c of [...Object.values(this.outcomes), ...Object.values(this.duplicates)]) c.inc(0);
    outages.inc(0);
    up.set(0);
    heldEvents.set(0);
    heldBytes.set(0);
  }

  count(outcome: CoordinationOutcome): void {
    this.outcomes[outcome].inc();
  }

  possibleDuplicate(reason: DuplicateReason): void {
    this.duplicates[reason].inc();
  }

  redisUp(up: boolean): void {
    this.up.set(up ? 1 : 0);
    if (!up) this.outages.inc();
  }

  held(events: number, bytes: number): void {
    this.heldEvents.set(events);
    this.heldBytes.set(bytes);
  }
}

import { makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Gauge } from 'prom-client';
import { Spool } from './spool';

/** Gauges read the spool's state when scraped, so that they cost nothing per event. */
export const SPOOL_GAUGES = [
  makeGaugeProvider({
    name: 'sidecar_spool_events',
    help: 'Events in the spool waiting for delivery (dead letters not included).',
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(spool.depth);
    },
  }),
  makeGaugeProvider({
    name: 'sidecar_spool_bytes',
    help: 'Bytes the spool takes on disk (segment files, their acks and the dead letters), counted against SPOOL_MAX_BYTES.',
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(spool.bytes);
    },
  }),
  makeGaugeProvider({
    name: 'sidecar_spool_limit_bytes',
    help: 'SPOOL_MAX_BYTES: past it new events are answered 507.',
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(spool.maxBytes);
    },
  }),
  makeGaugeProvider({
    name: 'sidecar_spool_oldest_event_age_seconds',
    help: 'How long the oldest event waiting for delivery has been queued; 0 when none waits.',
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(spool.oldestAgeSeconds() ?? 0);
    },
  }),
  makeGaugeProvider({
    name: 'sidecar_spool_dead_letters',
    help: 'Events in the dead-letter folder.',
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(spool.deadLetterCount);
    },
  }),
];

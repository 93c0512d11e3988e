import { makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Gauge } from 'prom-client';
import { Spool } from './spool';

/** A gauge that reads the spool's state when scraped, so that it costs nothing per event. */
function spoolGauge(name: string, help: string, read: (spool: Spool) => number) {
  return makeGaugeProvider({
    name,
    help,
    inject: [Spool],
    collect(this: Gauge, spool: Spool) {
      this.set(read(spool));
    },
  });
}

export const SPOOL_GAUGES = [
  spoolGauge('sidecar_spool_events', 'Events in the spool waiting for delivery (dead letters not included).', (s) => s.depth),
  spoolGauge(
    'sidecar_spool_bytes',
    'Bytes the spool takes on disk (segment files, their acks and the dead letters), counted against SPOOL_MAX_BYTES.',
    (s) => s.bytes,
  ),
  spoolGauge('sidecar_spool_limit_bytes', 'SPOOL_MAX_BYTES: past it new events are answered 507.', (s) => s.maxBytes),
  spoolGauge(
    'sidecar_spool_oldest_event_age_seconds',
    'How long the oldest event waiting for delivery has been queued; 0 when none waits.',
    (s) => s.oldestAgeSeconds() ?? 0,
  ),
  spoolGauge('sidecar_spool_dead_letters', 'Events in the dead-letter folder.', (s) => s.deadLetterCount),
];

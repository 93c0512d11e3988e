import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';

export const HEALTH_EVENTS_METRIC = makeCounterProvider({
  name: 'sidecar_health_events_total',
  help: 'Health-check events received on the relay port, by whose check they belong to (own: a check of this sidecar waiting for it; foreign: another replica, or a check that already ended).',
  labelNames: ['origin'],
});

export interface Expectation {
  /** Resolves when the event with this id arrives on the relay port. */
  arrived: Promise<void>;
  /** Stops waiting; a later arrival of the id counts as foreign. */
  cancel(): void;
}

/**
 * The ids of health-check events this sidecar is waiting for. The health check registers
 * an id before it posts the event; the relay reports every id it intercepts.
 */
@Injectable()
export class RoundTrips {
  private readonly pending = new Map<string, () => void>();
  private readonly own;
  private readonly foreign;

  constructor(@InjectMetric('sidecar_health_events_total') events: Counter<'origin'>) {
    this.own = events.labels('own');
    this.own.inc(0); // exposed as 0 from the start, so that rate() and alerts see the series
    this.foreign = events.labels('foreign');
    this.foreign.inc(0);
  }

  expect(id: string): Expectation {
    let resolve!: () => void;
    const arrived = new Promise<void>((r) => (resolve = r));
    this.pending.set(id, resolve);
    return { arrived, cancel: () => this.pending.delete(id) };
  }

  /** Completes the check waiting for `id`; returns false when none of ours is. */
  receive(id: string): boolean {
    const resolve = this.pending.get(id);
    if (resolve === undefined) {
      this.foreign.inc();
      return false;
    }
    this.pending.delete(id);
    this.own.inc();
    resolve();
    return true;
  }

  get waiting(): number {
    return this.pending.size;
  }
}

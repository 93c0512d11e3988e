import type { Route } from '../dispatch/dispatch-table';
import type { RecordLocation } from './segment-log';

/**
 * An event waiting in the spool, as the worker keeps it in memory: what scheduling needs
 * and where its record lies (it is its own RecordLocation, one object per event). Its
 * headers and body stay on disk until it is sent.
 */
export interface SpooledEvent extends RecordLocation {
  readonly id: string;
  readonly route: Route;
  readonly deliveryId: string | null;
  readonly receivedAt: number;
  readonly queuedAt: number;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  /** Not before this (ms since the epoch). */
  nextAttemptAt: number;
  inFlight: boolean;
  /** Delivered or a dead letter: out of the queue. */
  done: boolean;
}

/**
 * The events for one destination, in arrival order. Only the first `window` unfinished
 * events may be attempted: with a window of 1, event n+1 is not sent before event n is
 * delivered or given up (strict order); a larger window trades order for throughput.
 * Finished events are dropped from the front as the head moves past them.
 */
export class DestinationQueue {
  private items: SpooledEvent[] = [];
  private head = 0;
  private unfinished = 0;
  /** Unfinished events by rule name, for listings without walking the queue. */
  private readonly byRule = new Map<string, number>();
  inFlight = 0;
  /** The last attempt failed and will be retried: logged once when it starts, once when it ends. */
  failing = false;
  timer: NodeJS.Timeout | null = null;
  timerAt = Infinity;

  constructor(
    readonly key: string,
    /** For listings: the destination's origin, never its path or query (they may carry a token). */
    readonly origin: string | null,
    private readonly window: number,
  ) {}

  get length(): number {
    return this.unfinished;
  }

  push(e: SpooledEvent): void {
    this.items.push(e);
    this.unfinished++;
    this.byRule.set(e.route.name, (this.byRule.get(e.route.name) ?? 0) + 1);
  }

  get rules(): string[] {
    return [...this.byRule.keys()];
  }

  /** The first unfinished event, for the oldest-age figure and listings. */
  first(): SpooledEvent | null {
    this.advance();
    return this.head < this.items.length ? this.items[this.head] : null;
  }

  /** Every unfinished event, in order. */
  *waiting(): IterableIterator<SpooledEvent> {
    for (let i = this.head; i < this.items.length; i++) if (!this.items[i].done) yield this.items[i];
  }

  /** Events inside the window, in order. */
  *eligible(): IterableIterator<SpooledEvent> {
    this.advance();
    let seen = 0;
    for (let i = this.head; i < this.items.length && seen < this.window; i++) {
      const e = this.items[i];
      if (e.done) continue;
      seen++;
      yield e;
    }
  }

  finished(e: SpooledEvent): void {
    if (e.done) return;
    e.done = true;
    this.unfinished--;
    const left = this.byRule.get(e.route.name)! - 1;
    if (left === 0) this.byRule.delete(e.route.name);
    else this.byRule.set(e.route.name, left);
    this.advance();
  }

  private advance(): void {
    while (this.head < this.items.length && this.items[this.head].done) this.head++;
    // Copy the live tail down now and then, so that a long-lived queue does not keep every event it ever had.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** Something with a deadline (performance.now() time; 0 for none) and what to do when it passes. */
export interface Expiring {
  deadline: number;
  expire(): void;
}

/**
 * Timeouts for many connections from one coarse timer. Setting a deadline is a field
 * write, where a socket timeout is a timer-list operation; a relay sets two or three per
 * request on each side. Deadlines set from `now` are met to within `resolutionMs` either way.
 */
export class Deadlines {
  private readonly items = new Set<Expiring>();
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() as of the last sweep: deadlines are set from it without reading the clock. */
  now = performance.now();

  constructor(private readonly resolutionMs = 100) {}

  add(item: Expiring): void {
    this.items.add(item);
    if (this.timer === null) {
      this.now = performance.now();
      this.timer = setInterval(() => this.sweep(), this.resolutionMs);
      this.timer.unref();
    }
  }

  delete(item: Expiring): void {
    this.items.delete(item);
    if (this.items.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Expires every item whose deadline has passed (clearing it first, so that it fires once). */
  sweep(now = performance.now()): void {
    this.now = now;
    for (const item of this.items) {
      if (item.deadline !== 0 && now >= item.deadline) {
        item.deadline = 0;
        item.expire();
      }
    }
  }

  get size(): number {
    return this.items.size;
  }
}

import { totalmem } from 'node:os';

/**
 * The bytes of request bodies the relay holds in memory at once, across every caller
 * (RELAY_MAX_BUFFERED_BYTES). A body is held from its first byte until its answer is
 * over; a request whose body does not fit waits, unread (the caller's TCP window fills
 * and it stops sending), until enough is released. Waiters are served in arrival order,
 * except that one that fits goes ahead of a larger one that does not.
 */
export class BodyBudget {
  private used = 0;
  private readonly waiting: BudgetWaiter[] = [];

  constructor(readonly limit: number) {}

  get held(): number {
    return this.used;
  }

  get waiters(): number {
    return this.waiting.length;
  }

  /**
   * Takes `bytes` now if they fit (with nothing held, any amount fits: one body larger
   * than the budget is refused by RELAY_MAX_BODY_BYTES, never by waiting forever).
   */
  tryTake(bytes: number): boolean {
    if (this.used > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  /** Queues for `bytes`; `granted` is called once they are taken for the waiter. Cancel with `cancel`. */
  wait(bytes: number, granted: () => void): BudgetWaiter {
    const w: BudgetWaiter = { bytes, granted };
    this.waiting.push(w);
    return w;
  }

  cancel(w: BudgetWaiter): void {
    const i = this.waiting.indexOf(w);
    if (i !== -1) this.waiting.splice(i, 1);
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    this.used -= bytes;
    for (let i = 0; i < this.waiting.length;) {
      const w = this.waiting[i];
      if (!this.tryTake(w.bytes)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      w.granted();
    }
  }
}

export interface BudgetWaiter {
  readonly bytes: number;
  readonly granted: () => void;
}

/** Without a container memory limit: what a 256 Mi pod (the example's limit) gets. */
const UNLIMITED_DEFAULT = 64 * 1024 * 1024;

/**
 * RELAY_MAX_BUFFERED_BYTES when unset: a quarter of the container's memory limit (cgroup,
 * as Node reads it), 64 MiB without one; never less than one body of RELAY_MAX_BODY_BYTES.
 */
export function defaultBufferedBytes(maxBodyBytes: number, memoryLimit = containerMemoryLimit()): number {
  const derived = memoryLimit === null ? UNLIMITED_DEFAULT : Math.floor(memoryLimit / 4);
  return Math.max(derived, maxBodyBytes);
}

/** The cgroup memory limit, or null when there is none (Node reports a huge number then). */
export function containerMemoryLimit(): number | null {
  const limit = process.constrainedMemory();
  return limit > 0 && limit < totalmem() ? limit : null;
}

/**
 * Delivery ids (X-GitHub-Delivery by default) accepted within the window, each with the
 * id of the event that first carried it. A sender that retries an event the spool
 * already holds gets that first id back and nothing is stored twice.
 *
 * The window counts from the first acceptance; a later duplicate does not extend it.
 * At most `capacity` ids are kept, the oldest dropped first, so memory stays bounded
 * whatever the rate.
 */
export class DeliveryIdIndex {
  /** In acceptance order (Map keeps insertion order), so that the oldest are at the front. */
  private readonly entries = new Map<string, { eventId: string; acceptedAt: number }>();
  /**
   * Walks the entries oldest first from one eviction to the next. A fresh keys() iterator per
   * eviction would step again over every entry deleted at the front since the Map last
   * compacted itself: ~30 µs per eviction at 100 000 ids (scripts/bench-libraries.mjs).
   * Entries before its position are all gone (new ones and re-remembered ones go to the end),
   * so its next entry is always the oldest.
   */
  private oldest: Iterator<string> | null = null;

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 100_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The first event's id when `deliveryId` was accepted less than a window before `now`. */
  lookup(deliveryId: string, now: number): string | null {
    const e = this.entries.get(deliveryId);
    if (e === undefined) return null;
    if (now - e.acceptedAt >= this.windowMs) {
      this.entries.delete(deliveryId);
      return null;
    }
    return e.eventId;
  }

  /**
   * Remembers an acceptance. Entries must come oldest first (recovery sorts them), except
   * that an older one than the newest is still taken: only pruning order suffers, never
   * correctness, since lookup checks the age itself.
   */
  remember(deliveryId: string, eventId: string, acceptedAt: number): void {
    this.entries.delete(deliveryId);
    this.entries.set(deliveryId, { eventId, acceptedAt });
    if (this.entries.size > this.capacity) this.evictOldest();
  }

  private evictOldest(): void {
    let next = (this.oldest ??= this.entries.keys()).next();
    if (next.done) next = (this.oldest = this.entries.keys()).next();
    if (!next.done) this.entries.delete(next.value);
  }

  /** Drops what has aged out of the window, from the oldest on. */
  prune(now: number): void {
    for (const [id, e] of this.entries) {
      if (now - e.acceptedAt < this.windowMs) break;
      this.entries.delete(id);
    }
  }

  /** Oldest first, for saving the index across a restart. */
  *remembered(now: number): IterableIterator<{ deliveryId: string; eventId: string; acceptedAt: number }> {
    for (const [deliveryId, e] of this.entries) {
      if (now - e.acceptedAt < this.windowMs) yield { deliveryId, ...e };
    }
  }
}

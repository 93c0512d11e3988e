/**
 * The pushes waiting for delivery, oldest first, at most `capacity` of them. A receiver
 * takes a series' samples only in time order, so the head must be delivered (or given
 * up) before anything behind it is sent; when the backend stays away long enough for the
 * queue to fill, the oldest push is the one to go.
 */
export class PushQueue<T> {
  private readonly items: T[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a whole number above 0');
  }

  get length(): number {
    return this.items.length;
  }

  get head(): T | undefined {
    return this.items[0];
  }

  /** Appends `item`; returns what was dropped from the head to make room. */
  add(item: T): T[] {
    this.items.push(item);
    return this.items.length > this.capacity ? this.items.splice(0, this.items.length - this.capacity) : [];
  }

  /** Removes `item` when it is still the head (it may have been dropped meanwhile). */
  settle(item: T): boolean {
    if (this.items[0] !== item) return false;
    this.items.shift();
    return true;
  }

  /** Empties the queue, returning what it held. */
  clear(): T[] {
    return this.items.splice(0);
  }
}

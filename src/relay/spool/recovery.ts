import type { DeadLetter } from './dead-letter-folder';
import type { RecordLocation, RecoveredRecord } from './segment-log';

/** What reconciling needs of a record's meta. */
export interface Identity {
  id: string;
  seq: number;
  queuedAt: number;
}

export interface Reconciled<M extends Identity> {
  /** One record per event still to deliver, in arrival (seq) order. */
  live: RecoveredRecord<M>[];
  /** Records whose event is finished after all: already a dead letter, or a second copy of a kept one. */
  finish: RecordLocation[];
  /** Dead letters that were requeued (a newer record of the event exists): their file goes. */
  requeued: string[];
}

/**
 * Settles what a crash may have left between two steps of a move:
 * - dead-lettering writes the letter, then finishes the record: a record whose letter
 *   is as new as the record (died at or after it was queued) is finished now;
 * - a requeue appends a new record (queuedAt later than the letter's death), then
 *   deletes the letter: the record wins and the letter goes;
 * - an event found twice in the log (a requeue whose earlier record was never
 *   finished) is kept once, its newest copy.
 */
export function reconcile<M extends Identity>(
  records: readonly RecoveredRecord<M>[],
  letterOf: (id: string) => DeadLetter | undefined,
): Reconciled<M> {
  const newest = new Map<string, RecoveredRecord<M>>();
  const finish: RecordLocation[] = [];
  for (const r of records) {
    const kept = newest.get(r.meta.id);
    if (kept === undefined) {
      newest.set(r.meta.id, r);
    } else if (r.meta.queuedAt > kept.meta.queuedAt || (r.meta.queuedAt === kept.meta.queuedAt && r.meta.seq > kept.meta.seq)) {
      finish.push(kept.location);
      newest.set(r.meta.id, r);
    } else {
      finish.push(r.location);
    }
  }
  const live: RecoveredRecord<M>[] = [];
  const requeued: string[] = [];
  for (const r of newest.values()) {
    const letter = letterOf(r.meta.id);
    if (letter === undefined) {
      live.push(r);
    } else if (r.meta.queuedAt > letter.dead.at) {
      live.push(r);
      requeued.push(r.meta.id);
    } else {
      finish.push(r.location);
    }
  }
  live.sort((a, b) => a.meta.seq - b.meta.seq);
  return { live, finish, requeued };
}

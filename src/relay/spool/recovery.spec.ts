import type { DeadLetter } from './dead-letter-folder';
import { reconcile } from './recovery';
import type { RecordLocation, RecoveredRecord } from './segment-log';
import type { EventMeta } from './spool-record';

let nextOffset = 0;
function record(id: string, seq: number, queuedAt: number): RecoveredRecord {
  const location = { segment: null, offset: nextOffset++, length: 1, seq } as unknown as RecordLocation;
  const meta = { id, seq, queuedAt, receivedAt: 0 } as EventMeta;
  return { location, meta };
}

function letter(id: string, deadAt: number): DeadLetter {
  return {
    id,
    seq: 0,
    route: 'default',
    receivedAt: 0,
    queuedAt: 0,
    deliveryId: null,
    dead: { at: deadAt, attempts: 3, lastStatus: 500, lastError: null },
    bytes: 1,
  };
}

describe('reconcile (what a crash between two steps of a move left)', () => {
  it('keeps every record without a letter, in seq order', () => {
    const r = reconcile([record('b', 2, 20), record('a', 1, 10), record('c', 3, 30)], () => undefined);
    expect(r.live.map((x) => x.meta.id)).toEqual(['a', 'b', 'c']);
    expect(r.finish).toEqual([]);
    expect(r.requeued).toEqual([]);
  });

  it('finishes a record whose letter was written before the crash (dead-lettering cut short)', () => {
    const rec = record('a', 1, 10);
    const r = reconcile([rec, record('b', 2, 20)], (id) => (id === 'a' ? letter('a', 15) : undefined));
    expect(r.live.map((x) => x.meta.id)).toEqual(['b']);
    expect(r.finish).toEqual([rec.location]);
  });

  it('counts a letter that died the moment it was queued as dead', () => {
    const rec = record('a', 1, 10);
    expect(reconcile([rec], () => letter('a', 10)).finish).toEqual([rec.location]);
  });

  it('keeps the record and drops the letter when the record was appended after the death (requeue cut short)', () => {
    const r = reconcile([record('a', 9, 50)], () => letter('a', 40));
    expect(r.live.map((x) => x.meta.seq)).toEqual([9]);
    expect(r.requeued).toEqual(['a']);
  });

  it('keeps one copy of an event found twice, the newest, and finishes the other', () => {
    const old = record('a', 1, 10);
    const requeued = record('a', 7, 60);
    const r = reconcile([old, record('b', 2, 20), requeued], () => undefined);
    expect(r.live.map((x) => x.meta.seq)).toEqual([2, 7]);
    expect(r.finish).toEqual([old.location]);

    const r2 = reconcile([requeued, old], () => undefined);
    expect(r2.live.map((x) => x.meta.seq)).toEqual([7]);
  });
});

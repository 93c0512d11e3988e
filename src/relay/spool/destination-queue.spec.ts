import type { Route } from '../dispatch/dispatch-table';
import { DestinationQueue, SpooledEvent } from './destination-queue';

const route = (name: string) => ({ name }) as Route;
function event(seq: number, rule = 'default'): SpooledEvent {
  return {
    segment: null as never,
    offset: 0,
    length: 1,
    seq,
    id: `e${seq}`,
    route: route(rule),
    deliveryId: null,
    receivedAt: seq,
    queuedAt: seq,
    attempts: 0,
    lastStatus: null,
    lastError: null,
    nextAttemptAt: 0,
    inFlight: false,
    done: false,
  };
}
const seqs = (it: Iterable<SpooledEvent>) => [...it].map((e) => e.seq);

describe('DestinationQueue', () => {
  it('with a window of 1 offers only the oldest unfinished event', () => {
    const q = new DestinationQueue('k', null, 1);
    const events = [1, 2, 3].map((n) => event(n));
    for (const e of events) q.push(e);
    expect(seqs(q.eligible())).toEqual([1]);
    q.finished(events[0]);
    expect(seqs(q.eligible())).toEqual([2]);
    expect(q.first()!.seq).toBe(2);
    expect(q.length).toBe(2);
  });

  it('with a window of n offers the n oldest unfinished ones, finished ones in between not counted', () => {
    const q = new DestinationQueue('k', null, 3);
    const events = [1, 2, 3, 4, 5, 6].map((n) => event(n));
    for (const e of events) q.push(e);
    expect(seqs(q.eligible())).toEqual([1, 2, 3]);
    q.finished(events[1]);
    expect(seqs(q.eligible())).toEqual([1, 3, 4]);
    q.finished(events[1]); // twice is once
    expect(q.length).toBe(5);
  });

  it('counts unfinished events by rule', () => {
    const q = new DestinationQueue('k', null, 1);
    const a = event(1, 'dev');
    q.push(a);
    q.push(event(2, 'default'));
    q.push(event(3, 'dev'));
    expect(q.rules.sort()).toEqual(['default', 'dev']);
    q.finished(a);
    expect(q.rules.sort()).toEqual(['default', 'dev']);
  });

  it('keeps its order while it drops finished events from the front of a long queue', () => {
    const q = new DestinationQueue('k', null, 2);
    const events = Array.from({ length: 5000 }, (_, i) => event(i));
    for (const e of events) q.push(e);
    for (const e of events.slice(0, 3000)) q.finished(e);
    expect(seqs(q.eligible())).toEqual([3000, 3001]);
    q.push(event(5000));
    for (const e of events.slice(3000)) q.finished(e);
    expect(seqs(q.eligible())).toEqual([5000]);
    expect(q.length).toBe(1);
  });
});

import { DeliveryIdIndex } from './delivery-id-index';

describe('DeliveryIdIndex', () => {
  it('gives the first event id for a delivery id within the window, and forgets it after', () => {
    const ids = new DeliveryIdIndex(1000);
    ids.remember('d1', 'e1', 10_000);
    expect(ids.lookup('d1', 10_000)).toBe('e1');
    expect(ids.lookup('d1', 10_999)).toBe('e1');
    expect(ids.lookup('d2', 10_500)).toBeNull();
    expect(ids.lookup('d1', 11_000)).toBeNull();
    expect(ids.size).toBe(0);
  });

  it('counts the window from the first acceptance: duplicates do not extend it', () => {
    const ids = new DeliveryIdIndex(1000);
    ids.remember('d1', 'e1', 0);
    for (const t of [300, 600, 900]) expect(ids.lookup('d1', t)).toBe('e1');
    expect(ids.lookup('d1', 1000)).toBeNull();
  });

  it('takes a new event for an id whose window has passed', () => {
    const ids = new DeliveryIdIndex(1000);
    ids.remember('d1', 'e1', 0);
    expect(ids.lookup('d1', 5000)).toBeNull();
    ids.remember('d1', 'e2', 5000);
    expect(ids.lookup('d1', 5100)).toBe('e2');
  });

  it('prunes what aged out, oldest first, and lists what is remembered', () => {
    const ids = new DeliveryIdIndex(1000);
    ids.remember('a', 'ea', 0);
    ids.remember('b', 'eb', 500);
    ids.remember('c', 'ec', 900);
    ids.prune(1400);
    expect(ids.size).toBe(2);
    expect([...ids.remembered(1450)]).toEqual([
      { deliveryId: 'b', eventId: 'eb', acceptedAt: 500 },
      { deliveryId: 'c', eventId: 'ec', acceptedAt: 900 },
    ]);
    expect([...ids.remembered(1600)].map((r) => r.deliveryId)).toEqual(['c']);
  });

  it('keeps at most its capacity, dropping the oldest', () => {
    const ids = new DeliveryIdIndex(60_000, 3);
    for (const [i, d] of ['a', 'b', 'c', 'd'].entries()) ids.remember(d, `e${d}`, i);
    expect(ids.size).toBe(3);
    expect(ids.lookup('a', 10)).toBeNull();
    expect(ids.lookup('d', 10)).toBe('ed');
  });

  it('keeps dropping the oldest as ids come and go: after lookups that expire, prunes and re-remembered ids', () => {
    const ids = new DeliveryIdIndex(1000, 3);
    for (const [i, d] of ['a', 'b', 'c', 'd'].entries()) ids.remember(d, `e${d}`, i); // a dropped
    ids.remember('b', 'eb2', 10); // b is now the newest
    ids.remember('e', 'ee', 11); // c dropped
    expect([...ids.remembered(20)].map((r) => r.deliveryId)).toEqual(['d', 'b', 'e']);
    expect(ids.lookup('d', 1003)).toBeNull(); // aged out, deleted by the lookup
    ids.remember('f', 'ef', 1004);
    ids.remember('g', 'eg', 1005); // b dropped
    expect([...ids.remembered(1006)].map((r) => r.deliveryId)).toEqual(['e', 'f', 'g']);
    ids.prune(1012); // e aged out
    for (const [i, d] of ['h', 'i', 'j'].entries()) ids.remember(d, `e${d}`, 1020 + i); // f, g dropped
    expect([...ids.remembered(1030)].map((r) => r.deliveryId)).toEqual(['h', 'i', 'j']);
    for (let i = 0; i < 1000; i++) ids.remember(`x${i}`, `ex${i}`, 1100 + i);
    expect([...ids.remembered(2100)].map((r) => r.deliveryId)).toEqual(['x997', 'x998', 'x999']);
    expect(ids.size).toBe(3);
  });
});

import { PushQueue } from './push-queue';

describe('PushQueue', () => {
  it('keeps order and drops the oldest beyond capacity', () => {
    const q = new PushQueue<number>(3);
    expect([1, 2, 3].flatMap((n) => q.add(n))).toEqual([]);
    expect(q.add(4)).toEqual([1]);
    expect(q.head).toBe(2);
    expect(q.length).toBe(3);
    expect(q.clear()).toEqual([2, 3, 4]);
    expect(q.length).toBe(0);
    expect(q.head).toBeUndefined();
  });

  it('settles only the current head', () => {
    const q = new PushQueue<string>(2);
    q.add('a');
    q.add('b');
    q.add('c'); // 'a' dropped while it may have been in flight
    expect(q.settle('a')).toBe(false);
    expect(q.settle('b')).toBe(true);
    expect(q.head).toBe('c');
  });

  it('refuses a capacity below 1', () => {
    expect(() => new PushQueue(0)).toThrow(RangeError);
  });
});

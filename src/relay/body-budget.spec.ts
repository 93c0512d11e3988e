import { BodyBudget, defaultBufferedBytes } from './body-budget';

describe('BodyBudget', () => {
  it('takes what fits and refuses what does not', () => {
    const b = new BodyBudget(100);
    expect(b.tryTake(60)).toBe(true);
    expect(b.tryTake(40)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    expect(b.held).toBe(100);
  });

  it('lets one body larger than the whole budget through when nothing else is held', () => {
    const b = new BodyBudget(100);
    expect(b.tryTake(150)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
  });

  it('grants waiters in order as bytes are released; a smaller one that fits goes ahead of a larger one that does not', () => {
    const b = new BodyBudget(100);
    b.tryTake(90);
    const order: string[] = [];
    b.wait(80, () => order.push('big'));
    b.wait(20, () => order.push('small'));
    b.release(10); // 80 held: small fits, big does not
    expect(order).toEqual(['small']);
    b.release(80); // 20 held (small): big fits
    expect(order).toEqual(['small', 'big']);
    expect([b.held, b.waiters]).toEqual([100, 0]);
  });

  it('forgets a cancelled waiter', () => {
    const b = new BodyBudget(10);
    b.tryTake(10);
    const granted = jest.fn();
    const w = b.wait(5, granted);
    b.cancel(w);
    b.release(10);
    expect(granted).not.toHaveBeenCalled();
    expect(b.held).toBe(0);
  });
});

describe('defaultBufferedBytes', () => {
  it('is a quarter of the memory limit, 64 MiB without one, never under one largest body', () => {
    const MiB = 1024 * 1024;
    expect(defaultBufferedBytes(25 * MiB, 256 * MiB)).toBe(64 * MiB);
    expect(defaultBufferedBytes(25 * MiB, 2048 * MiB)).toBe(512 * MiB);
    expect(defaultBufferedBytes(25 * MiB, null)).toBe(64 * MiB);
    expect(defaultBufferedBytes(25 * MiB, 64 * MiB)).toBe(25 * MiB);
  });
});

import { Deadlines, Expiring } from './deadlines';

function item(deadline: number): Expiring & { expired: number } {
  return { deadline, expired: 0, expire() { this.expired++; } };
}

describe('Deadlines', () => {
  it('expires what is due, once, and leaves the rest and those without a deadline', () => {
    const d = new Deadlines();
    const due = item(100);
    const later = item(300);
    const none = item(0);
    [due, later, none].forEach((i) => d.add(i));
    d.sweep(150);
    d.sweep(160);
    expect([due.expired, later.expired, none.expired]).toEqual([1, 0, 0]);
    d.sweep(300);
    expect(later.expired).toBe(1);
    [due, later, none].forEach((i) => d.delete(i));
  });

  it('lets an item delete itself while it expires', () => {
    const d = new Deadlines();
    const a: Expiring = { deadline: 1, expire: () => d.delete(a) };
    const b = item(1);
    d.add(a);
    d.add(b);
    d.sweep(2);
    expect(b.expired).toBe(1);
    expect(d.size).toBe(1);
    d.delete(b);
  });

  it('runs its timer only while it has items, and meets a deadline within its resolution', async () => {
    const d = new Deadlines(20);
    const x = item(performance.now() + 50);
    d.add(x);
    await new Promise((r) => setTimeout(r, 120));
    expect(x.expired).toBe(1);
    d.delete(x);
    expect(d.size).toBe(0);
  });
});

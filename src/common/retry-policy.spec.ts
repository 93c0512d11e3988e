import { backoffMs, httpDate, retryAfterMs } from './retry-policy';

describe('backoffMs (exponential, equal jitter)', () => {
  const b = { initialMs: 100, maxMs: 1000 };

  it('doubles from the first ceiling up to the maximum; the top of the draw is the ceiling', () => {
    expect([1, 2, 3, 4, 5, 10, 1000].map((n) => backoffMs(n, b, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect([1, 2, 3, 4].map((n) => backoffMs(n, { initialMs: 1000, maxMs: 60_000 }, () => 0.999999))).toEqual([1000, 2000, 4000, 8000]);
  });

  it('never waits less than half the ceiling', () => {
    expect([1, 2, 3, 10].map((n) => backoffMs(n, b, () => 0))).toEqual([50, 100, 200, 500]);
    expect(backoffMs(3, b, () => 0.5)).toBe(300);
  });

  it('counts a first failure for a count below one', () => {
    expect(backoffMs(0, b, () => 1)).toBe(100);
    expect(backoffMs(-3, b, () => 1)).toBe(100);
  });

  it('does not overflow after very many failures', () => {
    expect(backoffMs(5000, { initialMs: 1000, maxMs: 60_000 }, () => 0.5)).toBe(45_000);
    expect(backoffMs(Number.MAX_SAFE_INTEGER, b, () => 1)).toBe(1000);
  });

  it('spreads the draws over the upper half, with Math.random by default', () => {
    const draws = Array.from({ length: 2000 }, () => backoffMs(4, { initialMs: 1000, maxMs: 60_000 }));
    expect(draws.every((d) => d >= 4000 && d <= 8000)).toBe(true);
    expect(Math.min(...draws)).toBeLessThan(4400);
    expect(Math.max(...draws)).toBeGreaterThan(7600);
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('takes delay-seconds', () => {
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs(' 3 ', now)).toBe(3000);
  });

  it('takes the first of a repeated header', () => {
    expect(retryAfterMs(['7', '9'], now)).toBe(7000);
    expect(retryAfterMs(['soon', '9'], now)).toBeNull();
    expect(retryAfterMs([], now)).toBeNull();
  });

  it('takes an HTTP-date in each of its three forms', () => {
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Thursday, 01-Jan-26 00:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('Thu Jan  1 00:00:05 2026', now)).toBe(5000);
  });

  it('counts a date in the past as no delay', () => {
    expect(retryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('Wednesday, 31-Dec-25 23:00:00 GMT', now)).toBe(0);
  });

  it('counts from the clock when no time is given', () => {
    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    const ms = retryAfterMs(inAMinute);
    expect(ms).toBeGreaterThan(55_000);
    expect(ms).toBeLessThanOrEqual(60_000);
  });

  it.each([
    undefined,
    '',
    '   ',
    '-5',
    '1.5',
    '+3',
    'soon',
    '2030-01-01',
    'Thu, 01 Jan 2026',
    'Thu, 01 Jan 2026 00:00:30',
    'Thu, 01 Jan 2026 00:00:30 CET',
    'Thu, 01 Jan 2026 00:00:30 +0000',
    'Thu, 99 Foo 2026 00:00:30 GMT',
  ])('ignores %j', (v) => {
    expect(retryAfterMs(v, now)).toBeNull();
  });
});

describe('httpDate', () => {
  it('reads the three forms as GMT', () => {
    expect(httpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(784111777000);
    expect(httpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(784111777000);
    expect(httpDate('Sun Nov  6 08:49:37 1994')).toBe(784111777000);
  });

  it('refuses an impossible time and anything Date.parse alone would take', () => {
    expect(httpDate('Sun, 06 Nov 1994 25:49:37 GMT')).toBeNull();
    expect(httpDate('3')).toBeNull();
    expect(httpDate('1994-11-06T08:49:37Z')).toBeNull();
    expect(httpDate('Sun Nov 6 08:49:37 1994')).toBeNull(); // asctime pads the day with a space
  });
});

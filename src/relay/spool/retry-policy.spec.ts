import { backoffMs, httpDate, nextAttemptAt, retryAfterMs, verdictFor } from './retry-policy';

describe('verdictFor', () => {
  it.each([200, 201, 202, 204, 299])('%d is delivered', (s) => expect(verdictFor(s)).toBe('delivered'));
  it.each([408, 429, 500, 502, 503, 504, 599])('%d is retried', (s) => expect(verdictFor(s)).toBe('retry'));
  it.each([301, 302, 307, 400, 401, 403, 404, 409, 410, 413, 422])('%d goes to the dead letters at once', (s) =>
    expect(verdictFor(s)).toBe('dead'),
  );
});

describe('retryAfterMs', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('takes delay-seconds', () => {
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs(' 3 ', now)).toBe(3000);
    expect(retryAfterMs(['7', '9'], now)).toBe(7000);
  });

  it('takes an HTTP-date in each of its three forms', () => {
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Thursday, 01-Jan-26 00:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('Thu Jan  1 00:00:05 2026', now)).toBe(5000);
  });

  it('counts a date in the past as no delay', () => {
    expect(retryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
  });

  it.each([undefined, '', '-5', '1.5', 'soon', '2030-01-01', 'Thu, 01 Jan 2026', 'Thu, 01 Jan 2026 00:00:30 CET'])('ignores %j', (v) => {
    expect(retryAfterMs(v, now)).toBeNull();
  });

  it('reads the HTTP-date forms as GMT', () => {
    expect(httpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(784111777000);
    expect(httpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(784111777000);
    expect(httpDate('Sun Nov  6 08:49:37 1994')).toBe(784111777000);
    expect(httpDate('Sun, 06 Nov 1994 25:49:37 GMT')).toBeNull();
  });
});

describe('backoffMs (exponential, full jitter)', () => {
  const s = { initialMs: 1000, maxMs: 60_000 };
  it('draws from [0, initial·2^(n-1)), capped at the maximum', () => {
    const top = (n: number) => backoffMs(n, s, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(top)).toEqual([999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]);
    expect(backoffMs(3, s, () => 0)).toBe(0);
    expect(backoffMs(3, s, () => 0.5)).toBe(2000);
  });

  it('does not overflow after very many attempts', () => {
    expect(backoffMs(5000, s, () => 0.5)).toBe(30_000);
  });

  it('spreads delays over the whole range', () => {
    const draws = Array.from({ length: 2000 }, () => backoffMs(4, s));
    expect(Math.min(...draws)).toBeLessThan(800);
    expect(Math.max(...draws)).toBeGreaterThan(7200);
    expect(draws.every((d) => d >= 0 && d < 8000)).toBe(true);
  });
});

describe('nextAttemptAt', () => {
  const s = { initialMs: 1000, maxMs: 60_000, maxAgeMs: 3_600_000 };
  const half = () => 0.5;

  it('backs off from now', () => {
    expect(nextAttemptAt({ queuedAt: 0, attempts: 1 }, null, 10_000, s, half)).toBe(10_500);
    expect(nextAttemptAt({ queuedAt: 0, attempts: 3 }, null, 10_000, s, half)).toBe(12_000);
  });

  it('honours Retry-After as it is, without jitter, even past the backoff maximum', () => {
    expect(nextAttemptAt({ queuedAt: 0, attempts: 1 }, 120_000, 10_000, s, half)).toBe(130_000);
    expect(nextAttemptAt({ queuedAt: 0, attempts: 9 }, 0, 10_000, s, half)).toBe(10_000);
  });

  it('makes the last try at the deadline, then gives up', () => {
    expect(nextAttemptAt({ queuedAt: 0, attempts: 1 }, 7_200_000, 3_000_000, s)).toBe(3_600_000);
    expect(nextAttemptAt({ queuedAt: 0, attempts: 20 }, null, 3_600_000, s)).toBeNull();
    expect(nextAttemptAt({ queuedAt: 0, attempts: 20 }, null, 3_700_000, s)).toBeNull();
  });
});

import { nextAttemptAt, verdictFor } from './retry-policy';

describe('verdictFor', () => {
  it.each([200, 201, 202, 204, 299])('%d is delivered', (s) => expect(verdictFor(s)).toBe('delivered'));
  it.each([408, 429, 500, 502, 503, 504, 599])('%d is retried', (s) => expect(verdictFor(s)).toBe('retry'));
  it.each([301, 302, 307, 400, 401, 403, 404, 409, 410, 413, 422])('%d goes to the dead letters at once', (s) =>
    expect(verdictFor(s)).toBe('dead'),
  );
});

describe('nextAttemptAt', () => {
  const s = { initialMs: 1000, maxMs: 60_000, maxAgeMs: 3_600_000 };
  const half = () => 0.5;

  it('backs off from now, by the shared backoff (equal jitter: here three quarters of the ceiling)', () => {
    expect(nextAttemptAt({ queuedAt: 0, attempts: 1 }, null, 10_000, s, half)).toBe(10_750);
    expect(nextAttemptAt({ queuedAt: 0, attempts: 3 }, null, 10_000, s, half)).toBe(13_000);
    expect(nextAttemptAt({ queuedAt: 0, attempts: 30 }, null, 10_000, s, () => 1)).toBe(70_000);
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

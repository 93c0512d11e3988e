import { backoffMs, isRetried, resultOfStatus, retryAfterMs } from './delivery-policy';

describe('resultOfStatus', () => {
  it.each([
    [200, 'success'],
    [204, 'success'],
    [400, 'rejected'],
    [401, 'rejected'],
    [404, 'rejected'],
    [413, 'rejected'],
    [429, 'throttled'],
    [500, 'server_error'],
    [502, 'server_error'],
    [503, 'server_error'],
    [301, 'rejected'],
  ])('%d is %s', (status, result) => expect(resultOfStatus(status)).toBe(result));

  it('retries throttling, server errors and network errors only', () => {
    expect(['success', 'rejected', 'throttled', 'server_error', 'network_error'].filter((r) => isRetried(r as never))).toEqual([
      'throttled',
      'server_error',
      'network_error',
    ]);
  });
});

describe('backoffMs', () => {
  it('doubles from the minimum up to the maximum, jitter between half and all of it', () => {
    expect([1, 2, 3, 4, 5, 10, 1000].map((n) => backoffMs(n, 100, 1000, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect([1, 2, 3, 10].map((n) => backoffMs(n, 100, 1000, () => 0))).toEqual([50, 100, 200, 500]);
    for (let i = 0; i < 100; i++) {
      const ms = backoffMs(3, 100, 1000);
      expect(ms).toBeGreaterThanOrEqual(200);
      expect(ms).toBeLessThanOrEqual(400);
    }
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delay seconds', () => {
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs(' 0 ', now)).toBe(0);
  });
  it('reads an HTTP-date, IMF-fixdate or RFC 850, and never goes negative', () => {
    expect(retryAfterMs('Wed, 01 Jan 2025 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('Wednesday, 01-Jan-25 00:00:07 GMT', now)).toBe(7000);
    expect(retryAfterMs('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
  });
  it.each([undefined, '', '-1', '1.5', 'soon', '2025-01-01', 'Wed, 01 Jan 2025 00:00:05', 'Wed, 99 Foo 2025 00:00:05 GMT'])(
    'ignores %j',
    (v) => {
      expect(retryAfterMs(v, now)).toBeNull();
    },
  );
});

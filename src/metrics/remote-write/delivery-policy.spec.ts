import { isRetried, resultOfStatus } from './delivery-policy';

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

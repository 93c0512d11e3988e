import { redactSecrets } from './redact';

describe('redactSecrets', () => {
  it.each([
    ['http://user:hunter2pw@', 'http://***@'],
    ['http://user:hunter2pw@app:3000/hook', 'http://***@app:3000/hook'],
    ['https://hunter2pw@app', 'https://***@app'],
    ['http://u:pa/ss@wd@app/x', 'http://***@app/x'],
    ['http://app/hook?token=hunter2pw&page=2', 'http://app/hook?token=***&page=2'],
    ['http://app/hook?page=2&X-Api-Key=hunter2pw#top', 'http://app/hook?page=2&X-Api-Key=***#top'],
    ['http://[::1:/?access_token=hunter2pw', 'http://[::1:/?access_token=***'],
    ['http://app?sig=hunter2pw;client_secret=hunter2pw', 'http://app?sig=***;client_secret=***'],
    ['DOWNSTREAM_SERVICE_URL="http://u:hunter2pw@": expected an absolute http:// or https:// URL',
      'DOWNSTREAM_SERVICE_URL="http://***@": expected an absolute http:// or https:// URL'],
  ])('%s', (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
    expect(redactSecrets(input)).not.toContain('hunter2pw');
  });

  it('leaves text without credentials as it is', () => {
    for (const s of ['http://app:3000/hook?page=2', 'expected an absolute http:// or https:// URL', 'a@b', 'RELAY_PORT="70000"', 'http://app/users/@me']) {
      expect(redactSecrets(s)).toBe(s);
    }
  });
});

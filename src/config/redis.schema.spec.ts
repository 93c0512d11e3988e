import { loadConfig } from './load-config';

const BASE = { DOWNSTREAM_SERVICE_URL: 'http://localhost:3000' };
const noFiles = (p: string): string => {
  throw new Error(`ENOENT: no such file, open '${p}'`);
};

describe('coordination settings (REDIS_*)', () => {
  it('is off without REDIS_URL, and on with it, with documented defaults', () => {
    const off = loadConfig(BASE, noFiles);
    expect(off.ok && off.config.coordination).toBeNull();
    const on = loadConfig({ ...BASE, REDIS_URL: 'redis://redis:6379/0' }, noFiles);
    if (!on.ok) throw new Error(on.problems.join('; '));
    expect(on.config.coordination).toMatchObject({
      url: 'redis://redis:6379/0',
      passwordFile: null,
      keyPrefix: 'pod-sidecar:',
      commandTimeoutMs: 250,
      leaseMs: 15_000,
      doneTtlMs: 900_000,
      holdMaxBytes: 64 * 1024 * 1024,
      eventIdHeaders: ['x-github-delivery', 'x-gitlab-event-uuid', 'x-gitea-delivery', 'x-forgejo-delivery', 'x-gogs-delivery', 'x-request-uuid'],
    });
    // Each process its own name in claims, even two pods with one host name.
    const again = loadConfig({ ...BASE, REDIS_URL: 'redis://redis:6379/0' }, noFiles);
    expect(again.ok && again.config.coordination!.replica).not.toBe(on.config.coordination!.replica);
  });

  it('takes rediss:// and a password file', () => {
    const r = loadConfig({ ...BASE, REDIS_URL: 'rediss://redis.example:6380', REDIS_PASSWORD_FILE: '/run/secrets/redis' }, (p) => (p === '/run/secrets/redis' ? 's3cret\n' : noFiles(p)));
    expect(r.ok && r.config.coordination).toMatchObject({ url: 'rediss://redis.example:6380', passwordFile: '/run/secrets/redis' });
  });

  it('lists every problem at once, without the password', () => {
    const r = loadConfig({
      ...BASE,
      REDIS_URL: 'http://redis:6379',
      REDIS_TIMEOUT: 'soon',
      REDIS_LEASE: '100ms',
      REDIS_EVENT_ID_HEADERS: 'X-Good, bad header',
      REDIS_PASSWORD_FILE: '/nowhere',
    }, noFiles);
    expect(r.ok).toBe(false);
    const text = r.ok ? '' : r.problems.join('\n');
    expect(text).toMatch(/REDIS_URL=.*expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(text).toMatch(/REDIS_TIMEOUT=.*expected a duration from 10ms to 10s/);
    expect(text).toMatch(/REDIS_LEASE=.*expected a duration from 1s to 10m/);
    expect(text).toMatch(/REDIS_EVENT_ID_HEADERS=.*"bad header" is not a header name/);
    expect(text).toMatch(/REDIS_PASSWORD_FILE="\/nowhere": cannot read it/);
  });

  it('refuses a command timeout that leaves no time to renew a claim, an empty password file, and a password file without REDIS_URL', () => {
    const slow = loadConfig({ ...BASE, REDIS_URL: 'redis://r', REDIS_TIMEOUT: '5s', REDIS_LEASE: '10s' }, noFiles);
    expect(slow.ok ? [] : slow.problems).toEqual([expect.stringMatching(/REDIS_TIMEOUT="5s": expected at most a quarter of REDIS_LEASE/)]);
    const empty = loadConfig({ ...BASE, REDIS_URL: 'redis://r', REDIS_PASSWORD_FILE: '/p' }, () => '\n');
    expect(empty.ok ? [] : empty.problems).toEqual(['REDIS_PASSWORD_FILE="/p": the file is empty']);
    const alone = loadConfig({ ...BASE, REDIS_PASSWORD_FILE: '/p' }, () => 'x');
    expect(alone.ok ? [] : alone.problems).toEqual(['REDIS_PASSWORD_FILE: needs REDIS_URL']);
  });

  it('never shows a password written into REDIS_URL', () => {
    const r = loadConfig({ ...BASE, REDIS_URL: 'redis://:hunter2@redis:6379', REDIS_TIMEOUT: 'x' }, noFiles);
    expect(r.ok ? '' : r.problems.join('\n')).not.toContain('hunter2');
  });
});

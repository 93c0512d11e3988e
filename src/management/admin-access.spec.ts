import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearerToken, isAdminRequest, isLoopbackAddress, TokenFile, tokenProblem, tokensMatch } from './admin-access';

describe('isLoopbackAddress', () => {
  it.each([
    '127.0.0.1',
    '127.0.0.2',
    '127.255.255.254',
    '::1',
    '0:0:0:0:0:0:0:1',
    '::0:1',
    '::ffff:127.0.0.1',
    '::FFFF:127.1.2.3',
    '0:0:0:0:0:ffff:7f00:1',
    '::1%lo',
  ])('%s is loopback', (a) => expect(isLoopbackAddress(a)).toBe(true));

  it.each([
    '10.0.0.7',
    '192.168.1.20',
    '0.0.0.0',
    '128.0.0.1',
    '1.127.0.0',
    '172.17.0.1',
    '::',
    '::2',
    'fe80::1',
    '::ffff:10.0.0.7',
    '::ffff:8.8.8.8',
    '2001:db8::1',
    '::127.0.0.1',
    'fd00::7f00:1',
    '1::1',
    'localhost',
    '127.0.0.1.nip.io',
    '127.0.0',
    '',
    undefined,
  ])('%s is not', (a) => expect(isLoopbackAddress(a)).toBe(false));
});

describe('isAdminRequest', () => {
  it.each([
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/metrics'],
    ['GET', '/status'],
    ['HEAD', '/status'],
    ['GET', '/spool'],
    ['GET', '/spool/dead-letters'],
    ['GET', '/agent/report?x=1'],
    ['GET', '/connections'],
    ['GET', '/debugger'],
  ])('%s %s is open', (m, u) => expect(isAdminRequest(m, u)).toBe(false));

  it.each([
    ['POST', '/spool/dead-letters/requeue'],
    ['post', '/spool/dead-letters/0b7e1a0e-6f6a-4c49-9b8b-1d1b7d7b7d7b/requeue'],
    ['DELETE', '/spool/dead-letters/0b7e1a0e-6f6a-4c49-9b8b-1d1b7d7b7d7b'],
    ['PUT', '/status'],
    ['PATCH', '/anything'],
    ['OPTIONS', '/spool'],
    ['GET', '/debug/pprof/heap'],
    ['GET', '/debug/pprof/profile?seconds=1'],
    ['GET', '/debug/runtime'],
    ['HEAD', '/debug'],
  ])('%s %s needs the token or loopback', (m, u) => expect(isAdminRequest(m, u)).toBe(true));
});

describe('bearerToken and tokensMatch', () => {
  it('takes the token of a Bearer header, scheme in any case', () => {
    expect(bearerToken('Bearer abc.def-123')).toBe('abc.def-123');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Basic YWxhZGRpbjpvcGVu', 'abc', 'Bearer a b', ['Bearer a', 'Bearer b']])
      expect(bearerToken(h)).toBeNull();
  });

  it('matches only the same token, whatever the lengths', () => {
    const t = 'k3G9v1Lq0Zr7Xw2e';
    expect(tokensMatch(t, t)).toBe(true);
    for (const other of ['', t.slice(0, -1), `${t}x`, t.toUpperCase(), `${t.slice(0, -1)}f`]) expect(tokensMatch(other, t)).toBe(false);
  });
});

describe('tokenProblem', () => {
  it('accepts a token with its trailing newline, refuses empty, short and spaced ones', () => {
    expect(tokenProblem('k3G9v1Lq0Zr7Xw2e\n')).toBeNull();
    expect(tokenProblem(' \n')).toBe('the file is empty');
    expect(tokenProblem('short')).toMatch(/shorter than 16/);
    expect(tokenProblem('k3G9v1Lq 0Zr7Xw2e')).toMatch(/one word/);
  });
});

describe('TokenFile', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'token-file-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('follows a rotation done as a Secret volume does it (a symlink swapped to a new folder)', async () => {
    // kubelet: token -> ..data/token, ..data -> ..<timestamp>; rotation renames a new ..data link over the old.
    const write = (name: string, token: string) => {
      rmSync(join(dir, name), { recursive: true, force: true });
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'token'), token);
      symlinkSync(name, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    write('..v1', 'first-token-aaaaaaaa\n');
    symlinkSync('..data/token', join(dir, 'token'));
    const problems: string[] = [];
    const file = new TokenFile(join(dir, 'token'), (p) => problems.push(p));
    expect(await file.current()).toBe('first-token-aaaaaaaa');
    write('..v2', 'second-token-bbbbbbb\n');
    expect(await file.current()).toBe('second-token-bbbbbbb');
    expect(problems).toEqual([]);
  });

  it('keeps the last good token while the file is missing or unusable, and says why without the content', async () => {
    const path = join(dir, 'token');
    writeFileSync(path, 'first-token-aaaaaaaa');
    const problems: string[] = [];
    const file = new TokenFile(path, (p) => problems.push(p));
    expect(await file.current()).toBe('first-token-aaaaaaaa');
    unlinkSync(path);
    expect(await file.current()).toBe('first-token-aaaaaaaa');
    writeFileSync(path, 'tiny-secret');
    expect(await file.current()).toBe('first-token-aaaaaaaa');
    expect(problems).toEqual(['cannot read it (ENOENT)', 'the token is shorter than 16 characters']);
    expect(problems.join()).not.toContain('tiny-secret');
    writeFileSync(path, 'third-token-ccccccc');
    expect(await file.current()).toBe('third-token-ccccccc');
  });

  it('has no token when the file never held a usable one', async () => {
    expect(await new TokenFile(join(dir, 'absent')).current()).toBeNull();
  });
});

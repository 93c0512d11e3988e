import { checkRequestHead, hasDotSegment, isRefusal } from './request-checks';

describe('hasDotSegment', () => {
  it.each([
    '/..',
    '/../x',
    '/a/../x',
    '/./x',
    '/a/.',
    '/a/./b',
    '/%2e%2e/x',
    '/%2E%2e/x',
    '/.%2e/x',
    '/%2e/x',
    '/..%2fx',
    '/..%2Fx',
    '/a%2f..%2fx',
    '/..%5cx',
    '/..\\x',
    '/a\\..\\x',
    '/..;/x',
    '/..;jsessionid=1/x',
    '/.;x/y',
    '/../x?ok=1',
  ])('finds one in %s', (url) => {
    expect(hasDotSegment(url)).toBe(true);
  });

  it.each([
    '/',
    '/x',
    '/github/events',
    '/a.b/c',
    '/.well-known/x',
    '/...',
    '/..x',
    '/x..',
    '/a/.b',
    '/%2e%2e%2e',
    '/file.json',
    '/%2ex',
    '/x?path=../../etc',
    '/x?./y',
    '/a;b/c',
    '/a%2fb',
  ])('finds none in %s', (url) => {
    expect(hasDotSegment(url)).toBe(false);
  });
});

describe('checkRequestHead', () => {
  const ok = (url: string, headers: string[], http11 = true) => checkRequestHead(url, headers, http11, 1000);

  it('reads the declared length, chunking and a health-check id in one pass', () => {
    expect(ok('/x', ['Host', 'h', 'Content-Length', '12', 'X-Health-Check-Id', 'abc'])).toEqual({
      declared: 12,
      chunked: false,
      healthId: 'abc',
    });
    expect(ok('/x', ['host', 'h', 'transfer-encoding', 'chunked'])).toEqual({ declared: -1, chunked: true, healthId: undefined });
  });

  it('refuses a target that is not a path, a dot-segment, two Hosts, an HTTP/1.1 request without Host', () => {
    const refusals = [
      ok('http://evil.example/x', ['Host', 'h']),
      ok('*', ['Host', 'h']),
      ok('/%2e%2e/admin', ['Host', 'h']),
      ok('/x', ['Host', 'a', 'host', 'b']),
      ok('/x', ['X-Other', 'y']),
    ];
    for (const r of refusals) expect(r).toMatchObject({ status: 400, error: 'bad_request' });
    expect(isRefusal(ok('/x', [], false))).toBe(false); // HTTP/1.0 may leave Host out
  });

  it('refuses a transfer coding other than chunked (501) and a declared length over the limit (413)', () => {
    expect(ok('/x', ['Host', 'h', 'Transfer-Encoding', 'gzip, chunked'])).toMatchObject({ status: 501, error: 'not_implemented' });
    expect(ok('/x', ['Host', 'h', 'Content-Length', '1001'])).toMatchObject({ status: 413, error: 'payload_too_large' });
    expect(isRefusal(ok('/x', ['Host', 'h', 'Content-Length', '1000']))).toBe(false);
  });
});

import {
  isHopByHop,
  notForwarded,
  clientAddress,
  destinationPath,
  endToEndHeaders,
  forwardRequestHeaders,
  forwardResponseHeaders,
  headerNameIs,
  joinPath,
} from './forwarding';

describe('joinPath (as Go httputil joins)', () => {
  it.each([
    ['/webhook', '/', '/webhook/'],
    ['/webhook/', '/', '/webhook/'],
    ['/webhook', '/a/b', '/webhook/a/b'],
    ['/webhook/', '/a', '/webhook/a'],
    ['/webhook', 'a', '/webhook/a'],
    ['/', '/a', '/a'],
  ])('%s + %s = %s', (a, b, joined) => expect(joinPath(a, b)).toBe(joined));
});

describe('destinationPath', () => {
  const at = (u: string) => new URL(u);
  it('keeps the request path when the destination has none', () => {
    expect(destinationPath(at('http://app:3000'), '/hook?x=1')).toBe('/hook?x=1');
    expect(destinationPath(at('http://app:3000/'), '/')).toBe('/');
  });
  it('joins onto a path prefix', () => {
    expect(destinationPath(at('http://app/webhook'), '/')).toBe('/webhook/');
    expect(destinationPath(at('http://app/webhook'), '/github')).toBe('/webhook/github');
  });
  it('merges queries, destination first', () => {
    expect(destinationPath(at('http://app/w?token=a'), '/x?y=1')).toBe('/w/x?token=a&y=1');
    expect(destinationPath(at('http://app/w?token=a'), '/x')).toBe('/w/x?token=a');
    expect(destinationPath(at('http://app/w'), '/x?y=1&y=2')).toBe('/w/x?y=1&y=2');
  });
  it('keeps an encoded path as it came', () => {
    expect(destinationPath(at('http://app/w'), '/a%2Fb?q=%20')).toBe('/w/a%2Fb?q=%20');
  });
});

describe('forwardRequestHeaders', () => {
  const ctx = { destinationHost: 'app:3000', clientAddress: '10.0.0.7' };
  const pairs = (flat: string[]) => {
    const out: [string, string][] = [];
    for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
    return out;
  };

  it('sends the destination Host and keeps the original in X-Forwarded-Host', () => {
    const h = pairs(forwardRequestHeaders(['Host', 'sidecar:8080', 'X-GitHub-Event', 'push'], ctx));
    expect(h).toEqual([
      ['host', 'app:3000'],
      ['X-GitHub-Event', 'push'],
      ['x-forwarded-for', '10.0.0.7'],
      ['x-forwarded-host', 'sidecar:8080'],
      ['x-forwarded-proto', 'http'],
    ]);
  });

  it('drops hop-by-hop headers and those named by Connection', () => {
    const h = forwardRequestHeaders(
      [
        'Connection',
        'keep-alive, X-Private',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers',
        'Trailer',
        'X-Sum',
        'Upgrade',
        'h2c',
        'Proxy-Authorization',
        'Basic x',
        'Proxy-Connection',
        'keep-alive',
        'X-Private',
        'secret',
        'Content-Length',
        '5',
        'Content-Type',
        'application/json',
      ],
      ctx,
    );
    const names = pairs(h).map(([n]) => n.toLowerCase());
    expect(names).toEqual(['host', 'content-type', 'x-forwarded-for', 'x-forwarded-proto']);
  });

  it('keeps end-to-end headers in order, with case and duplicates', () => {
    const h = pairs(forwardRequestHeaders(['Accept', 'a', 'X-Hub-Signature-256', 'sha256=00', 'Accept', 'b'], ctx));
    expect(h.slice(1, 4)).toEqual([
      ['Accept', 'a'],
      ['X-Hub-Signature-256', 'sha256=00'],
      ['Accept', 'b'],
    ]);
  });

  it('appends to an existing X-Forwarded-For chain', () => {
    const h = pairs(forwardRequestHeaders(['X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2'], ctx));
    expect(h).toContainEqual(['x-forwarded-for', '1.1.1.1, 2.2.2.2, 10.0.0.7']);
  });

  it('drops what a caller claims of earlier hops and the relay cannot vouch for: Forwarded, X-Real-IP, X-Forwarded-Port', () => {
    const h = pairs(
      forwardRequestHeaders(
        ['Host', 'h', 'Forwarded', 'for=203.0.113.9;proto=https', 'X-Real-IP', '203.0.113.9', 'X-Forwarded-Port', '443', 'X-Keep', '1'],
        ctx,
      ),
    );
    expect(h.map(([n]) => n.toLowerCase())).toEqual(['host', 'x-keep', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
  });

  it('replaces incoming X-Forwarded-Host/-Proto with what this hop saw', () => {
    const h = pairs(forwardRequestHeaders(['Host', 'h', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil'], ctx));
    expect(h.filter(([n]) => n.startsWith('x-forwarded-') && n !== 'x-forwarded-for')).toEqual([
      ['x-forwarded-host', 'h'],
      ['x-forwarded-proto', 'http'],
    ]);
  });
});

describe('endToEndHeaders (what the spool keeps of a request)', () => {
  it('drops hop-by-hop headers, those named by Connection and Content-Length; keeps Host, X-Forwarded-* and the rest in order', () => {
    const kept = endToEndHeaders([
      'Host',
      'relay:8080',
      'Connection',
      'keep-alive, X-Hop',
      'X-Hop',
      '1',
      'Keep-Alive',
      'timeout=5',
      'Proxy-Authorization',
      'Basic eA==',
      'Transfer-Encoding',
      'chunked',
      'Content-Length',
      '12',
      'X-Forwarded-For',
      '192.0.2.1',
      'X-A',
      '1',
      'x-a',
      '2',
      'TE',
      'trailers',
    ]);
    expect(kept).toEqual(['Host', 'relay:8080', 'X-Forwarded-For', '192.0.2.1', 'X-A', '1', 'x-a', '2']);
  });

  it('gives the same headers downstream as the proxy would, once forwarded', () => {
    const raw = [
      'Host',
      'relay:8080',
      'Connection',
      'close, X-Hop',
      'X-Hop',
      '1',
      'X-Forwarded-For',
      '192.0.2.1',
      'Content-Type',
      'application/json',
      'Content-Length',
      '2',
    ];
    const ctx = { destinationHost: 'app:3000', clientAddress: '10.0.0.7' };
    expect(forwardRequestHeaders(endToEndHeaders(raw), ctx)).toEqual(forwardRequestHeaders(raw, ctx));
  });
});

describe('notForwarded', () => {
  it('is exactly "hop-by-hop, written by the relay, or an earlier hop\'s unverifiable claim", in any case, without lower-casing common names', () => {
    const names = [
      'Connection',
      'KEEP-ALIVE',
      'Proxy-Authorization',
      'proxy-anything',
      'TE',
      'Trailer',
      'Transfer-Encoding',
      'Upgrade',
      'Host',
      'Content-Length',
      'X-Forwarded-Proto',
      'x-forwarded-host',
      'Expect',
      'Forwarded',
      'X-Real-IP',
      'x-forwarded-port',
      'Content-Type',
      'X-Forwarded-For',
      'X-GitHub-Event',
      'X-Hub-Signature-256',
      'Accept',
      'User-Agent',
      'Tee',
      'Proxy',
      'Hosts',
      'Expected',
      'Content-Lengths',
    ];
    const dropped = new Set([
      'host',
      'content-length',
      'x-forwarded-proto',
      'x-forwarded-host',
      'expect',
      'forwarded',
      'x-real-ip',
      'x-forwarded-port',
    ]);
    for (const name of names)
      expect([name, notForwarded(name)]).toEqual([name, dropped.has(name.toLowerCase()) || isHopByHop(name.toLowerCase())]);
  });
});

describe('forwardResponseHeaders', () => {
  it('drops hop-by-hop headers and those named by Connection, keeps the rest, repeated ones each on its own line', () => {
    const out = forwardResponseHeaders({
      connection: 'keep-alive, X-Hop',
      'keep-alive': 'timeout=5',
      'x-hop': '1',
      'set-cookie': ['a=1', 'b=2'],
      'content-type': 'text/plain',
      'proxy-authenticate': 'Basic',
      'content-length': '12',
    });
    expect(out).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 'text/plain', 'content-length', '12']);
  });

  it('leaves the framing to the relay when the body came chunked (a Content-Length beside it is dropped)', () => {
    expect(forwardResponseHeaders({ 'transfer-encoding': 'chunked', 'content-length': '5', etag: '"x"' })).toEqual(['etag', '"x"']);
  });
});

describe('Expect', () => {
  it('is answered by the relay and never sent on, now or from the spool', () => {
    const ctx = { destinationHost: 'app', clientAddress: undefined };
    expect(forwardRequestHeaders(['Expect', '100-continue', 'Accept', '*/*'], ctx)).not.toContain('Expect');
    expect(endToEndHeaders(['Expect', '100-continue', 'Accept', '*/*'])).toEqual(['Accept', '*/*']);
  });
});

describe('clientAddress', () => {
  it('shows IPv4-mapped addresses as IPv4', () => {
    expect(clientAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientAddress('::1')).toBe('::1');
    expect(clientAddress(undefined)).toBeUndefined();
  });
});

describe('headerNameIs', () => {
  it('compares a wire name with a lower-case one, ignoring ASCII case only', () => {
    expect(headerNameIs('X-Environment', 'x-environment')).toBe(true);
    expect(headerNameIs('x-ENVIRONMENT', 'x-environment')).toBe(true);
    expect(headerNameIs('X-Environmen', 'x-environment')).toBe(false);
    expect(headerNameIs('X-Environment2', 'x-environment')).toBe(false);
    expect(headerNameIs('X_Environment', 'x-environment')).toBe(false);
    // '[' + 32 is '{': only A-Z are folded
    expect(headerNameIs('a[', 'a{')).toBe(false);
  });
});

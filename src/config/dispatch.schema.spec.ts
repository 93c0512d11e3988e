import { loadConfig } from './load-config';
import { pathText } from './dispatch.schema';
import { DISPATCHER_README_EXAMPLE } from '../../test/fixtures/dispatcher-readme-example';

function load(file: string, env: Record<string, string> = {}) {
  return loadConfig({ SIDECAR_CONFIG: '/etc/sidecar.yaml', ...env }, () => file);
}

function ok(file: string, env: Record<string, string> = {}) {
  const r = load(file, env);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

function problems(file: string, env: Record<string, string> = {}): string[] {
  const r = load(file, env);
  if (r.ok) throw new Error('expected the configuration to be refused');
  return r.problems;
}

const own = `
dispatch:
  header: X-Environment
  default: http://base:3000/hook
  rules:
    dev:
      destination: http://dev:4000/d
      patch:
        - set: { X-Dispatched: dev, X-Count: 3, X-Flag: true }
        - remove: X-Debug
    staging:
      name: stage
      keepHost: true
    "a.b":
      destination: https://ab.example/
`;

describe("dispatch section (the sidecar's own shape)", () => {
  it('reads header, default, rules in file order, patches in order with values as text', () => {
    const c = ok(own);
    expect(c.dispatch).toMatchObject({ header: 'X-Environment', format: 'sidecar' });
    expect(c.dispatch!.defaultDestination!.href).toBe('http://base:3000/hook');
    expect(c.dispatch!.rules.map((r) => [r.value, r.name, r.destination?.href ?? null, r.keepHost])).toEqual([
      ['dev', 'dev', 'http://dev:4000/d', false],
      ['staging', 'stage', null, true],
      ['a.b', 'a.b', 'https://ab.example/', false],
    ]);
    expect(c.dispatch!.rules[0].patches).toEqual([
      { op: 'set', name: 'X-Dispatched', value: 'dev' },
      { op: 'set', name: 'X-Count', value: '3' },
      { op: 'set', name: 'X-Flag', value: 'true' },
      { op: 'remove', name: 'X-Debug' },
    ]);
  });

  it('switches the relay on by itself, with no DOWNSTREAM_SERVICE_URL', () => {
    const c = ok(own);
    expect(c.relay).not.toBeNull();
    expect(c.relay!.downstreamUrl).toBeNull();
    expect(c.healthCheck).toBeNull();
  });

  it('takes DOWNSTREAM_SERVICE_URL as the default destination when the section has none; its own default wins', () => {
    const noDefault = 'dispatch:\n  header: X-Env\n  rules:\n    dev: { destination: "http://dev:1" }\n';
    expect(ok(noDefault, { DOWNSTREAM_SERVICE_URL: 'http://app:3000' }).dispatch!.defaultDestination!.href).toBe('http://app:3000/');
    expect(ok(own, { DOWNSTREAM_SERVICE_URL: 'http://app:3000' }).dispatch!.defaultDestination!.href).toBe('http://base:3000/hook');
  });

  it('allows no default at all when every rule has its own destination (others are answered 503)', () => {
    const c = ok('dispatch:\n  header: X-Env\n  rules:\n    dev: { destination: "http://dev:1" }\n');
    expect(c.dispatch!.defaultDestination).toBeNull();
  });

  it('takes settings beside the section, and empty rules or patch lists', () => {
    const c = ok('RELAY_PORT: 8181\ndispatch:\n  header: X-Env\n  default: http://a:1\n  rules:\n    dev:\n      patch:\n');
    expect(c.server.relayPort).toBe(8181);
    expect(c.dispatch!.rules[0].patches).toEqual([]);
    expect(ok('dispatch:\n  header: X-Env\n  default: http://a:1\n  rules:\n').dispatch!.rules).toEqual([]);
  });

  it('lists every problem at once with its path in the file', () => {
    const list = problems(`
dispatch:
  header: X Env
  default: /relative
  extra: 1
  rules:
    dev:
      destination: ftp://dev/
      keepHost: "yes"
      colour: blue
      patch:
        - set: { Connection: close }
        - set: { X-Evil: "a\\r\\nInjected: 1" }
        - remove: Host
        - { set: { A: b }, remove: C }
        - {}
        - set: { "bad name": x, Content-Length: 3, Transfer-Encoding: chunked, X-Odd: "\\u2603", X-Obj: { a: 1 } }
        - remove: Keep-Alive
        - nope
`);
    const at = '/etc/sidecar.yaml: ';
    expect(list).toEqual(expect.arrayContaining([
      `${at}dispatch.header: expected a header name (letters, digits and !#$%&'*+-.^_\`|~)`,
      `${at}dispatch.default: expected an absolute http:// or https:// URL`,
      `${at}dispatch.extra: unknown field`,
      `${at}dispatch.rules.dev.destination: expected an absolute http:// or https:// URL`,
      `${at}dispatch.rules.dev.keepHost: expected true or false`,
      `${at}dispatch.rules.dev.colour: unknown field`,
      `${at}dispatch.rules.dev.patch[0].set.Connection: Connection is a hop-by-hop header: it is never forwarded, so a patch cannot set or remove it`,
      `${at}dispatch.rules.dev.patch[1].set.X-Evil: a header value cannot contain CR or LF`,
      `${at}dispatch.rules.dev.patch[2].remove: Host is always sent; set it, or use keepHost to send the caller's`,
      `${at}dispatch.rules.dev.patch[3]: expected exactly one of set or remove`,
      `${at}dispatch.rules.dev.patch[4]: expected exactly one of set or remove`,
      `${at}dispatch.rules.dev.patch[5].set["bad name"]: expected a header name (letters, digits and !#$%&'*+-.^_\`|~)`,
      `${at}dispatch.rules.dev.patch[5].set.Content-Length: Content-Length is computed from the body the relay forwards; a patch cannot change it`,
      `${at}dispatch.rules.dev.patch[5].set.Transfer-Encoding: Transfer-Encoding is a hop-by-hop header: it is never forwarded, so a patch cannot set or remove it`,
      `${at}dispatch.rules.dev.patch[5].set.X-Odd: a header value cannot contain control characters or characters above U+00FF`,
      `${at}dispatch.rules.dev.patch[5].set.X-Obj: expected a header value (text, a number or true/false)`,
      `${at}dispatch.rules.dev.patch[6].remove: Keep-Alive is a hop-by-hop header: it is never forwarded, so a patch cannot set or remove it`,
      `${at}dispatch.rules.dev.patch[7]: expected {set: {Name: value}} or {remove: Name}`,
    ]));
    expect(list).toHaveLength(18);
  });

  it('joins file, section and environment problems in one list', () => {
    const list = problems('FOO: 1\ndispatch:\n  rules: {}\n', { RELAY_PORT: 'x' });
    expect(list).toEqual(expect.arrayContaining([
      '/etc/sidecar.yaml: FOO: unknown setting',
      '/etc/sidecar.yaml: dispatch.header: required (a header name)',
      'RELAY_PORT="x": expected a TCP port number',
    ]));
    expect(list).toHaveLength(3);
  });

  it('refuses a section that is not a mapping', () => {
    expect(problems('dispatch: yes\n')).toEqual(['/etc/sidecar.yaml: dispatch: expected a mapping: {header, default?, rules?}']);
  });

  it('keeps metric names unique and bounded: "default" is reserved, duplicates and empty names refused', () => {
    const list = problems(`
dispatch:
  header: X-Env
  default: http://a:1
  rules:
    default: {}
    one: { name: same }
    two: { name: same }
    "": {}
    three: { name: default }
`);
    expect(list).toEqual([
      '/etc/sidecar.yaml: dispatch.rules.default: "default" names the requests that match no rule; give this rule another name',
      '/etc/sidecar.yaml: dispatch.rules.two.name: the name "same" is also used by the rule for "one"',
      '/etc/sidecar.yaml: dispatch.rules[""]: a rule for the empty value needs a name (for metrics)',
      '/etc/sidecar.yaml: dispatch.rules.three.name: "default" names the requests that match no rule; give this rule another name',
    ]);
  });

  it('refuses a rule that has nowhere to go', () => {
    expect(problems('dispatch:\n  header: X-Env\n  rules:\n    dev:\n      keepHost: true\n')).toEqual([
      '/etc/sidecar.yaml: dispatch.rules.dev: no destination, and no default to fall back on (set dispatch.default or DOWNSTREAM_SERVICE_URL)',
    ]);
    expect(ok('dispatch:\n  header: X-Env\n  rules:\n    dev:\n      keepHost: true\n', { DOWNSTREAM_SERVICE_URL: 'http://app:1' }).dispatch!.rules).toHaveLength(1);
  });
});


describe('sidecar_http_dispatcher config file', () => {
  it('reads the README example as it is', () => {
    const c = ok(DISPATCHER_README_EXAMPLE);
    expect(c.dispatch).toEqual({
      header: 'environment',
      defaultDestination: new URL('http://example.org'),
      format: 'sidecar_http_dispatcher',
      rules: [{
        value: 'dev',
        name: 'dev',
        destination: new URL('http://example.com'),
        keepHost: false,
        patches: [{ op: 'set', name: 'Host', value: 'example.com' }, { op: 'set', name: 'dispatched', value: 'true' }],
      }],
    });
    expect(c.relay!.downstreamUrl).toBeNull();
  });

  it('turns numbers and booleans into text as YAML prints them', () => {
    const c = ok('key: env\ndestination: http://a:1\nrewrites:\n  x:\n    patch:\n      - { key: A, val: 42 }\n      - { key: B, val: false }\n      - { key: C, val: 1.5 }\n');
    expect(c.dispatch!.rules[0].patches.map((p) => (p.op === 'set' ? p.value : null))).toEqual(['42', 'false', '1.5']);
  });

  it('uses DOWNSTREAM_SERVICE_URL when the file has no destination', () => {
    expect(ok('key: env\nrewrites:\n  dev: {}\n', { DOWNSTREAM_SERVICE_URL: 'http://app:1' }).dispatch!.defaultDestination!.host).toBe('app:1');
  });

  it('lists every problem with its path, and says where other settings go', () => {
    const list = problems(`
destination: example.org
RELAY_PORT: 8080
rewrites:
  dev:
    patch:
      - key: Upgrade
        val: websocket
      - key: X-A
        val: "a\\nb"
      - key: X-B
      - val: 1
      - { key: X-C, val: 1, op: set }
    destination: http//example.com
    keepHost: true
`);
    const at = '/etc/sidecar.yaml: ';
    expect(list).toEqual(expect.arrayContaining([
      `${at}key: required (a header name)`,
      `${at}destination: expected an absolute http:// or https:// URL`,
      `${at}RELAY_PORT: unknown field (a sidecar_http_dispatcher file holds key, destination and rewrites; give other settings as environment variables)`,
      `${at}rewrites.dev.patch[0].key: Upgrade is a hop-by-hop header: it is never forwarded, so a patch cannot set or remove it`,
      `${at}rewrites.dev.patch[1].val: a header value cannot contain CR or LF`,
      `${at}rewrites.dev.patch[2].val: expected a header value (text, a number or true/false)`,
      `${at}rewrites.dev.patch[3].key: required (a header name)`,
      `${at}rewrites.dev.patch[4].op: unknown field`,
      `${at}rewrites.dev.destination: expected an absolute http:// or https:// URL`,
      `${at}rewrites.dev.keepHost: unknown field`,
    ]));
    expect(list).toHaveLength(10);
  });

  it('refuses a rewrite keyed "default" (that name is taken by unmatched requests) and one with nowhere to go', () => {
    expect(problems('key: env\nrewrites:\n  default:\n    destination: http://a:1\n  dev: {}\n')).toEqual([
      '/etc/sidecar.yaml: rewrites.default: "default" names the requests that match no rule; move the rules to a dispatch section, where a rule can be given another name',
      '/etc/sidecar.yaml: rewrites.dev: no destination, and no default to fall back on (set destination or DOWNSTREAM_SERVICE_URL)',
    ]);
  });
});

describe('with nothing configured', () => {
  it('names dispatch among the switches', () => {
    const r = loadConfig({}, () => '');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems[0]).toContain('dispatch: set SIDECAR_CONFIG to a file with a dispatch section');
  });
});

describe('pathText', () => {
  it('writes paths as they read in YAML, quoting keys that would be ambiguous', () => {
    expect(pathText(['dispatch', 'rules', 'dev', 'patch', 1, 'key'])).toBe('dispatch.rules.dev.patch[1].key');
    expect(pathText(['rules', 'a.b', 'name'])).toBe('rules["a.b"].name');
    expect(pathText(['rules', '1', 'set', 'X-Team'])).toBe('rules["1"].set.X-Team');
    expect(pathText([])).toBe('(top level)');
  });
});

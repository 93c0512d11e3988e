import type { DispatchConfig, DispatchRuleConfig } from '../../config/sidecar-config';
import { DispatchTable, singleRoute } from './dispatch-table';

const rule = (value: string, more: Partial<DispatchRuleConfig> = {}): DispatchRuleConfig => ({
  value,
  name: value,
  destination: null,
  keepHost: false,
  patches: [],
  ...more,
});

function table(more: Partial<DispatchConfig> = {}): DispatchTable {
  return new DispatchTable({
    header: 'X-Environment',
    defaultDestination: new URL('http://base:3000/hook'),
    rules: [
      rule('dev', { destination: new URL('http://dev:4000/d?k=1'), patches: [{ op: 'set', name: 'dispatched', value: 'true' }] }),
      rule('staging', { name: 'stage', destination: new URL('https://staging.example/'), keepHost: true }),
      rule('qa'),
    ],
    format: 'sidecar',
    ...more,
  });
}

describe('DispatchTable', () => {
  const t = table();

  it('routes by the exact value of the key header', () => {
    const r = t.match(['Host', 'x', 'X-Environment', 'dev']);
    expect(r.name).toBe('dev');
    expect(r.destination).toEqual({
      url: new URL('http://dev:4000/d?k=1'),
      origin: 'http://dev:4000',
      host: 'dev:4000',
      protocol: 'http:',
      hostname: 'dev',
      port: 4000,
      pathname: '/d',
      search: '?k=1',
    });
    expect(r.patches).toEqual([{ name: 'dispatched', lowerName: 'dispatched', value: 'true' }]);
    expect(t.match(['X-Environment', 'staging'])).toMatchObject({
      name: 'stage',
      keepHost: true,
      destination: { host: 'staging.example' },
    });
  });

  it('finds the key header whatever the case of its name', () => {
    expect(t.match(['x-environment', 'dev']).name).toBe('dev');
    expect(t.match(['X-ENVIRONMENT', 'dev']).name).toBe('dev');
  });

  it('takes the default route for a missing key header, an unknown value, or a value in another case', () => {
    for (const headers of [
      [],
      ['Accept', '*/*'],
      ['X-Environment', 'prod'],
      ['X-Environment', 'DEV'],
      ['X-Environment', ''],
      ['X-Environment-Id', 'dev'],
    ]) {
      const r = t.match(headers);
      expect(r).toBe(t.fallback);
      expect(r).toMatchObject({ name: 'default', keepHost: false, patches: null, destination: { origin: 'http://base:3000' } });
    }
  });

  it('reads the first occurrence of the key header', () => {
    expect(t.match(['X-Environment', 'staging', 'x-environment', 'dev']).name).toBe('stage');
    expect(t.match(['X-Environment', 'prod', 'x-environment', 'dev']).name).toBe('default');
  });

  it('sends a rule without its own destination to the default one', () => {
    expect(t.match(['X-Environment', 'qa']).destination!.origin).toBe('http://base:3000');
  });

  it('has no destination for unmatched requests when no default is configured', () => {
    const bare = table({ defaultDestination: null });
    expect(bare.match([]).destination).toBeNull();
    expect(bare.match(['X-Environment', 'dev']).destination!.host).toBe('dev:4000');
  });

  it('numbers its routes for counters, default first', () => {
    expect(t.routes.map((r) => [r.index, r.name])).toEqual([
      [0, 'default'],
      [1, 'dev'],
      [2, 'stage'],
      [3, 'qa'],
    ]);
    expect(t.header).toBe('x-environment');
  });

  it('gives rules without patches no patch list, so the hot path skips patching', () => {
    expect(t.match(['X-Environment', 'staging']).patches).toBeNull();
  });
});

describe('singleRoute', () => {
  it('is the relay without dispatch: one destination, nothing changed', () => {
    expect(singleRoute(new URL('http://app:3000/webhook'))).toEqual({
      name: 'default',
      index: 0,
      destination: {
        url: new URL('http://app:3000/webhook'),
        origin: 'http://app:3000',
        host: 'app:3000',
        protocol: 'http:',
        hostname: 'app',
        port: 3000,
        pathname: '/webhook',
        search: '',
      },
      keepHost: false,
      patches: null,
    });
    expect(singleRoute(null).destination).toBeNull();
  });
});

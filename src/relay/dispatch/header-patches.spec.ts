import { forwardRequestHeaders } from '../forwarding';
import { applyHeaderPatches, compilePatches } from './header-patches';
import type { HeaderPatch } from '../../config/sidecar-config';

const set = (name: string, value: string): HeaderPatch => ({ op: 'set', name, value });
const remove = (name: string): HeaderPatch => ({ op: 'remove', name });

function patched(headers: string[], ...patches: HeaderPatch[]): string[] {
  const out = [...headers];
  applyHeaderPatches(out, compilePatches(patches));
  return out;
}

describe('applyHeaderPatches', () => {
  it('adds a header that is not there, at the end', () => {
    expect(patched(['host', 'a', 'Accept', '*/*'], set('dispatched', 'true'))).toEqual([
      'host',
      'a',
      'Accept',
      '*/*',
      'dispatched',
      'true',
    ]);
  });

  it('replaces every occurrence, whatever its case, with one value where the first stood', () => {
    expect(patched(['X-Team', 'x', 'Accept', '*/*', 'x-team', 'y', 'X-TEAM', 'z', 'Via', 'v'], set('X-Team', 'a'))).toEqual([
      'X-Team',
      'a',
      'Accept',
      '*/*',
      'Via',
      'v',
    ]);
  });

  it('removes every occurrence, whatever its case, and keeps the order of the rest', () => {
    expect(patched(['A', '1', 'x-debug', 'on', 'B', '2', 'X-Debug', 'again', 'C', '3'], remove('X-DEBUG'))).toEqual([
      'A',
      '1',
      'B',
      '2',
      'C',
      '3',
    ]);
  });

  it('leaves the list alone when a removed header is absent', () => {
    expect(patched(['A', '1'], remove('X-Debug'))).toEqual(['A', '1']);
  });

  it('applies patches in order: a later patch sees what an earlier one did', () => {
    expect(patched(['A', '1'], set('X-A', 'one'), remove('x-a'))).toEqual(['A', '1']);
    expect(patched(['A', '1'], remove('A'), set('a', 'two'))).toEqual(['a', 'two']);
  });

  it('sets Host in place of the destination Host that forwarding wrote', () => {
    const headers = forwardRequestHeaders(['Host', 'relay:8080', 'Accept', '*/*'], {
      destinationHost: 'app:3000',
      clientAddress: '10.0.0.1',
    });
    applyHeaderPatches(headers, compilePatches([set('Host', 'example.com')]));
    expect(headers.slice(0, 2)).toEqual(['Host', 'example.com']);
    expect(headers.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')).toHaveLength(1);
    expect(headers).toContain('x-forwarded-host');
  });

  it('can put back a header that hop-by-hop filtering dropped, with the configured value', () => {
    const headers = forwardRequestHeaders(['Connection', 'X-Dispatched', 'X-Dispatched', 'from-client'], {
      destinationHost: 'app',
      clientAddress: undefined,
    });
    expect(headers).not.toContain('X-Dispatched');
    applyHeaderPatches(headers, compilePatches([set('X-Dispatched', 'dev')]));
    expect(headers.slice(-2)).toEqual(['X-Dispatched', 'dev']);
  });
});

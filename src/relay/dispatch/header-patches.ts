import type { HeaderPatch } from '../../config/sidecar-config';
import { headerNameIs } from '../forwarding';

/** A patch ready for the hot path: its header name lower-cased once; `value` null removes. */
export interface CompiledPatch {
  readonly name: string;
  readonly lowerName: string;
  readonly value: string | null;
}

export function compilePatches(patches: readonly HeaderPatch[]): CompiledPatch[] {
  return patches.map((p) => ({ name: p.name, lowerName: p.name.toLowerCase(), value: p.op === 'set' ? p.value : null }));
}

/**
 * Applies `patches` in order to a flat [name, value, ...] header list, in place. A set puts
 * its value where the header first occurs (or at the end) and drops any other occurrence,
 * whatever their case; a remove drops every occurrence. Other headers keep their order.
 */
export function applyHeaderPatches(headers: string[], patches: readonly CompiledPatch[]): void {
  for (const patch of patches) {
    let placed = patch.value === null;
    let w = 0;
    for (let r = 0; r < headers.length; r += 2) {
      if (headerNameIs(headers[r], patch.lowerName)) {
        if (placed) continue;
        headers[w] = patch.name;
        headers[w + 1] = patch.value!;
        placed = true;
      } else if (w !== r) {
        headers[w] = headers[r];
        headers[w + 1] = headers[r + 1];
      }
      w += 2;
    }
    headers.length = w;
    if (!placed) headers.push(patch.name, patch.value!);
  }
}

// Used by: health-check (its probe scripts), connections (wait-for-idle.sh).

import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-write';

/** Where the scripts' sources live, from src/ (tests) and dist/ (the image) alike. */
const SOURCES = join(__dirname, '..', '..', 'scripts', 'probes');

/** A script's source text, before its defaults are filled in. */
export function scriptSource(name: string): string {
  return readFileSync(join(SOURCES, name), 'utf8');
}

/** Quotes a value for POSIX sh, so that any path is safe inside the script. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * (Re)writes a script into the shared volume, mode 0555. A read-only copy left by an
 * earlier container is replaced by rename, which needs only the directory to be writable.
 */
export async function installScript(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, name), text, 0o555);
}

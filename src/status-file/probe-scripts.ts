import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/atomic-write';

/** The probe scripts written into the shared volume, by file name. */
export const PROBE_SCRIPTS = ['check-file-age.sh', 'check-smee-health.sh', 'check-sidecar-health.sh'] as const;

/** Where the scripts' sources live, from src/ (tests) and dist/ (the image) alike. */
const SOURCES = join(__dirname, '..', '..', 'scripts', 'probes');

/** Quotes a value for POSIX sh, so that any path is safe inside the script. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The script's text with the configured status file as its default. */
export function renderProbeScript(name: string, healthFilePath: string): string {
  return readFileSync(join(SOURCES, name), 'utf8').replaceAll('@HEALTH_FILE@', () => shellQuote(healthFilePath));
}

/** The preStop script of the connections feature. */
export const WAIT_FOR_IDLE_SCRIPT = 'wait-for-idle.sh';

export interface WaitForIdleDefaults {
  stateFilePath: string;
  settleSeconds: number;
  /** Age in whole seconds past which the state file counts as abandoned. */
  staleAfterSeconds: number;
}

export function renderWaitForIdleScript(d: WaitForIdleDefaults): string {
  return readFileSync(join(SOURCES, WAIT_FOR_IDLE_SCRIPT), 'utf8')
    .replaceAll('@STATE_FILE@', () => shellQuote(d.stateFilePath))
    .replaceAll('@SETTLE_SECONDS@', String(Math.trunc(d.settleSeconds)))
    .replaceAll('@STALE_AFTER@', String(Math.trunc(d.staleAfterSeconds)));
}

/**
 * (Re)writes a script into the shared volume, mode 0555. A read-only copy left by an
 * earlier container is replaced by rename, which needs only the directory to be writable.
 */
export async function installScript(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, name), text, 0o555);
}

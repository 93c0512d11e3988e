import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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

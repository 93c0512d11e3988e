import { scriptSource, shellQuote } from '../common/shell-scripts';

/** The probe scripts written into the shared volume, by file name. */
export const PROBE_SCRIPTS = ['check-file-age.sh', 'check-smee-health.sh', 'check-sidecar-health.sh'] as const;

/** The script's text with the configured status file as its default. */
export function renderProbeScript(name: string, healthFilePath: string): string {
  return scriptSource(name).replaceAll('@HEALTH_FILE@', () => shellQuote(healthFilePath));
}

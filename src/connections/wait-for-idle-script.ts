import { scriptSource, shellQuote } from '../common/shell-scripts';

/** The preStop script of the connections feature. */
export const WAIT_FOR_IDLE_SCRIPT = 'wait-for-idle.sh';

export interface WaitForIdleDefaults {
  stateFilePath: string;
  settleSeconds: number;
  /** Age in whole seconds past which the state file counts as abandoned. */
  staleAfterSeconds: number;
}

export function renderWaitForIdleScript(d: WaitForIdleDefaults): string {
  return scriptSource(WAIT_FOR_IDLE_SCRIPT)
    .replaceAll('@STATE_FILE@', () => shellQuote(d.stateFilePath))
    .replaceAll('@SETTLE_SECONDS@', String(Math.trunc(d.settleSeconds)))
    .replaceAll('@STALE_AFTER@', String(Math.trunc(d.staleAfterSeconds)));
}

import type { CheckObservation } from '../../src/agent/agent-state';

/** An upstream check that answered 200 in time, as a round sees it; `c` changes what a test needs. */
export function passingCheck(name: string, c: Partial<CheckObservation> = {}): CheckObservation {
  return {
    name,
    ok: true,
    softDown: false,
    pending: false,
    reachable: true,
    statusCode: 200,
    timedOut: false,
    error: null,
    durationMs: 1,
    ...c,
  };
}

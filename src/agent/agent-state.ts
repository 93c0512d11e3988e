import type { AdminStatus } from '../config/sidecar-config';

/**
 * The agent's decisions as pure functions of what was observed and of `now`: no timers, no
 * I/O. A round of observations goes into `observe`, which keeps the few timestamps flap
 * mitigation needs; `decide` turns them into what is reported at a given moment (health,
 * drain state, weight, the HAProxy agent line). Dampening and grace expire between rounds,
 * so `decide` is asked at the moment of each answer, not once per round.
 *
 * Flap mitigation follows signal-sidecar:
 * - dampening: after the last round that saw the node unhealthy, health is reported down
 *   for `dampeningMs` more, however healthy later rounds are;
 * - grace: from the first unhealthy round of a streak, while every failing check is one that
 *   only counts as soft-down (e.g. a 503 under load), the node is reported up but drained,
 *   for `graceMs` — if it has been healthy at least once since start-up.
 */

/** What the status file may say, and what it says when it cannot be used. */
export type StatusFileState = AdminStatus | 'unhealthy' | 'invalid' | 'missing' | 'unreadable';

export interface StatusFileReading {
  state: StatusFileState;
  /** The first characters of the file as read (for the report), null when there is none. */
  contents: string | null;
  /** Why it could not be read. */
  error: string | null;
}

/** Longest status file content that is looked at; anything longer is not one of the words. */
export const STATUS_FILE_READ_LIMIT = 4096;
const SHOWN_CONTENTS = 64;

/** The file's word, trimmed and in any case; anything else is `invalid`. */
export function parseStatusFile(text: string): StatusFileReading {
  const word = text.trim().toLowerCase();
  const shown = text.trim().slice(0, SHOWN_CONTENTS);
  if (word === 'ready' || word === 'drain' || word === 'maint' || word === 'unhealthy')
    return { state: word, contents: shown, error: null };
  return { state: 'invalid', contents: shown, error: null };
}

export interface CheckObservation {
  name: string;
  /** The answer was one the check expects. */
  ok: boolean;
  /** Not ok, in a way configured to drain (within the grace) rather than go down. */
  softDown: boolean;
  /** No result yet (the smee round trip before its first check ends): the node's health is unknown. */
  pending: boolean;
  reachable: boolean;
  statusCode: number | null;
  timedOut: boolean;
  error: string | null;
  durationMs: number;
  /** The start of the answer's body, trimmed, for checks that keep it (keepBodyBytes); absent otherwise and when no answer came. */
  body?: string;
}

/** A load reading: the value, or why there is none. */
export interface LoadReading {
  value: number | null;
  error: string | null;
  /** The source's extraFields that were numbers in the answer (one that is absent or not a number is left out). */
  extra?: Record<string, number>;
}

export interface Round {
  /** When the round ended, on the same clock as `now` in `decide`. */
  at: number;
  checks: CheckObservation[];
  statusFile: StatusFileReading;
  /** null: no load source configured. */
  load: LoadReading | null;
}

export type RoundHealth = 'healthy' | 'unhealthy' | 'unknown';

export interface FlapState {
  last: Round | null;
  /** The last round's health, and whether all of its failures were soft-down. */
  lastHealth: RoundHealth;
  lastSoftOnly: boolean;
  everHealthy: boolean;
  /** The last round that saw the node unhealthy. */
  lastUnhealthyAt: number | null;
  /** The first unhealthy round after a healthy one (or since start-up). */
  firstUnhealthyAt: number | null;
  /** Whether the round before was healthy; starts true, so that the first unhealthy round opens a streak. */
  wasHealthy: boolean;
}

export const INITIAL_STATE: FlapState = {
  last: null,
  lastHealth: 'unknown',
  lastSoftOnly: false,
  everHealthy: false,
  lastUnhealthyAt: null,
  firstUnhealthyAt: null,
  wasHealthy: true,
};

export interface Policy {
  dampeningMs: number;
  graceMs: number;
  /** null: no load source. */
  load: { max: number; weighted: boolean } | null;
  maxconn: number | null;
}

const USABLE_FILE_STATES: ReadonlySet<StatusFileState> = new Set(['ready', 'drain', 'maint']);

/** A round's health: unhealthy when the status file cannot be used or a check failed; unknown when only a pending check keeps it from healthy. */
export function roundHealth(round: Round): { health: RoundHealth; softOnly: boolean } {
  const fileOk = USABLE_FILE_STATES.has(round.statusFile.state);
  const failed = round.checks.filter((c) => !c.pending && !c.ok);
  if (!fileOk || failed.length > 0) return { health: 'unhealthy', softOnly: fileOk && failed.every((c) => c.softDown) };
  if (round.checks.some((c) => c.pending)) return { health: 'unknown', softOnly: false };
  return { health: 'healthy', softOnly: false };
}

/** The state after a round. A round of unknown health changes no timestamp. */
export function observe(state: FlapState, round: Round): FlapState {
  const { health, softOnly } = roundHealth(round);
  const next: FlapState = { ...state, last: round, lastHealth: health, lastSoftOnly: softOnly };
  if (health === 'healthy') {
    next.everHealthy = true;
    next.wasHealthy = true;
  } else if (health === 'unhealthy') {
    next.lastUnhealthyAt = round.at;
    if (state.wasHealthy) next.firstUnhealthyAt = round.at;
    next.wasHealthy = false;
  }
  return next;
}

export interface Verdict {
  /** Reported health: what /agent/health answers and the agent's up/down. */
  healthy: boolean;
  /** The reported health differs from the last round's because of dampening or grace. */
  damped: boolean;
  status: AdminStatus;
  /** Percent of the server's configured weight, 0-100. */
  weight: number;
  /** The HAProxy agent-check line, newline included. */
  agentMessage: string;
  /** Why the verdict is what it is, for the report and logs. */
  reasons: string[];
}

/** What is reported at `now`. */
export function decide(state: FlapState, now: number, policy: Policy): Verdict {
  const round = state.last;
  if (round === null) return verdict(false, false, 'drain', 0, ['no round of checks has completed yet'], policy);

  const reasons: string[] = [];
  for (const c of round.checks) {
    if (c.pending) reasons.push(`${c.name}: no result yet`);
    else if (!c.ok) reasons.push(`${c.name}: ${describeFailure(c)}${c.softDown ? ' (soft-down)' : ''}`);
  }

  const file = round.statusFile;
  let status: AdminStatus;
  if (file.state === 'ready' || file.state === 'drain' || file.state === 'maint') {
    status = file.state;
    if (status !== 'ready') reasons.push(`status file says ${status}`);
  } else {
    status = 'drain';
    reasons.push(`status file ${describeFile(file)}: unhealthy and drained`);
  }

  const load = round.load;
  if (policy.load && load && load.value !== null && load.value > policy.load.max && status === 'ready') {
    status = 'drain';
    reasons.push(`load ${load.value} is above the maximum ${policy.load.max}`);
  }

  let healthy: boolean;
  let damped = false;
  if (state.lastHealth === 'healthy') {
    healthy = true;
    const until = state.lastUnhealthyAt === null ? null : state.lastUnhealthyAt + policy.dampeningMs;
    if (policy.dampeningMs > 0 && until !== null && now < until) {
      healthy = false;
      damped = true;
      reasons.push(`dampening: unhealthy ${seconds(now - state.lastUnhealthyAt!)} ago, reported healthy from ${seconds(until - now)} on`);
    }
  } else if (state.lastHealth === 'unhealthy') {
    healthy = false;
    const until = state.firstUnhealthyAt === null ? null : state.firstUnhealthyAt + policy.graceMs;
    if (policy.graceMs > 0 && state.everHealthy && state.lastSoftOnly && until !== null && now < until) {
      healthy = true;
      damped = true;
      if (status === 'ready') status = 'drain';
      reasons.push(`drain grace: only soft-down checks fail, reported down from ${seconds(until - now)} on`);
    }
  } else {
    healthy = false;
  }

  return verdict(healthy, damped, status, weightOf(status, load, policy), reasons, policy);
}

function verdict(healthy: boolean, damped: boolean, status: AdminStatus, weight: number, reasons: string[], policy: Policy): Verdict {
  return { healthy, damped, status, weight, agentMessage: agentLine(healthy, status, weight, policy.maxconn), reasons };
}

/** 0 unless ready; 100 without a (weighting) load source; 1 when the load is unknown; else by free share. */
export function weightOf(status: AdminStatus, load: LoadReading | null, policy: Policy): number {
  if (status !== 'ready') return 0;
  if (!policy.load || !policy.load.weighted || !load) return 100;
  if (load.value === null) return 1;
  return weightFor(load.value, policy.load.max);
}

/**
 * The free share of `max`, as a percentage rounded to a multiple of 5, at least 1: a node
 * that is up always takes some traffic. Proportional all the way: 4999 of 5000 is 1%,
 * 2500 of 5000 is 50% (signal-sidecar's floor made it 100% until the maximum, then 1%).
 */
export function weightFor(load: number, max: number): number {
  const free = Math.min(1, Math.max(0, 1 - load / max));
  return Math.max(1, Math.round((free * 100) / 5) * 5);
}

/**
 * One agent-check reply: `<up|down> <ready|drain|maint> <N>%[ maxconn:M]\n`, words HAProxy's
 * agent-check accepts (it reads up to the first CR or LF).
 */
export function agentLine(healthy: boolean, status: AdminStatus, weight: number, maxconn: number | null): string {
  return `${healthy ? 'up' : 'down'} ${status} ${weight}%${maxconn === null ? '' : ` maxconn:${maxconn}`}\n`;
}

function describeFailure(c: CheckObservation): string {
  if (c.timedOut) return 'timed out';
  if (!c.reachable) return c.error ?? 'unreachable';
  if (c.statusCode !== null) return `answered ${c.statusCode}`;
  return c.error ?? 'failed';
}

function describeFile(f: StatusFileReading): string {
  switch (f.state) {
    case 'missing':
      return 'is missing';
    case 'unreadable':
      return `cannot be read (${f.error})`;
    case 'unhealthy':
      return 'says unhealthy';
    default:
      return `holds ${JSON.stringify(f.contents)}, not ready, drain or maint`;
  }
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

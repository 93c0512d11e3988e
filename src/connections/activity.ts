import type { TcpSocket } from './proc-net-tcp';

/** What the sockets of one monitored local port were doing at one read. */
export interface PortActivity {
  port: number;
  /** ESTABLISHED. */
  active: number;
  /** TIME_WAIT. */
  waiting: number;
  /** A LISTEN socket on the port exists. */
  listening: boolean;
  /** The addresses it is listened on (`0.0.0.0`, `::`, `127.0.0.1`...), sorted. */
  listenAddresses: string[];
  /** Sockets in any other state, by state name; only states present. */
  otherStates: Record<string, number>;
}

/** Counts the sockets of each monitored port. Sockets of other local ports are ignored. */
export function tally(sockets: readonly TcpSocket[], ports: readonly number[]): PortActivity[] {
  const byPort = new Map<number, PortActivity>(
    ports.map((port) => [port, { port, active: 0, waiting: 0, listening: false, listenAddresses: [], otherStates: {} }]),
  );
  for (const s of sockets) {
    const p = byPort.get(s.localPort);
    if (p === undefined) continue;
    if (s.state === 'ESTABLISHED') p.active++;
    else if (s.state === 'TIME_WAIT') p.waiting++;
    else if (s.state === 'LISTEN') {
      p.listening = true;
      if (!p.listenAddresses.includes(s.localAddress)) p.listenAddresses.push(s.localAddress);
    } else p.otherStates[s.state] = (p.otherStates[s.state] ?? 0) + 1;
  }
  for (const p of byPort.values()) p.listenAddresses.sort();
  return [...byPort.values()];
}

/**
 * Two clocks of quiet, each the time (ms since the epoch) of the first read that found
 * the condition after a read that did not, or null while the condition does not hold:
 *
 * - `quietSince`: no ESTABLISHED and no TIME_WAIT socket on any monitored port (spawner's
 *   `seconds_since_active`);
 * - `idleSince`: no ESTABLISHED socket (what wait-for-idle.sh waits on: a closed
 *   connection lingers in TIME_WAIT for a minute and needs nothing from the process).
 *
 * The first quiet read is used, not the last busy one: the connection ended somewhere
 * between the two, so the time reported never overstates how long the port has been quiet.
 */
export interface QuietClocks {
  quietSince: number | null;
  idleSince: number | null;
}

/** The clocks after a read at `at`; `counts` null when the read failed, which restarts both. */
export function advanceClocks(previous: QuietClocks | null, counts: { active: number; waiting: number } | null, at: number): QuietClocks {
  if (counts === null) return { quietSince: null, idleSince: null };
  return {
    quietSince: counts.active + counts.waiting > 0 ? null : (previous?.quietSince ?? at),
    idleSince: counts.active > 0 ? null : (previous?.idleSince ?? at),
  };
}

/** One refresh of the monitor: what it read, or why it could not. */
export interface ConnectionsSnapshot {
  /** When the tables were read, ms since the epoch. */
  at: number;
  /** Why the tables could not be read; null when they were. */
  error: string | null;
  /** Per monitored port; empty when the read failed. */
  ports: PortActivity[];
  /** Lines of the tables this read could not parse. */
  skippedLines: number;
  clocks: QuietClocks;
}

/** The answer of GET /connections: spawner-sidecar's four fields first, then ours. */
export interface ConnectionsAnswer {
  active_connections: number | null;
  waiting_connections: number | null;
  seconds_since_active: number | null;
  listening: boolean | null;
  seconds_idle: number | null;
  refreshed_at: string;
  error: string | null;
  skipped_lines: number;
  ports: Array<{
    port: number;
    active_connections: number;
    waiting_connections: number;
    listening: boolean;
    listen_addresses: string[];
    other_states: Record<string, number>;
  }>;
}

/** Whole seconds from `since` to `now`, as spawner reports them; null stays null. */
function secondsSince(since: number | null, now: number): number | null {
  return since === null ? null : Math.max(0, Math.floor((now - since) / 1000));
}

/**
 * Totals over every monitored port; `listening` is true when every monitored port is
 * listened on. Each count is null when the tables could not be read: a consumer that
 * decides whether a pod may go must not read "0" into a failure.
 */
export function toAnswer(s: ConnectionsSnapshot, now: number): ConnectionsAnswer {
  const ok = s.error === null;
  return {
    active_connections: ok ? sum(s.ports, (p) => p.active) : null,
    waiting_connections: ok ? sum(s.ports, (p) => p.waiting) : null,
    seconds_since_active: secondsSince(s.clocks.quietSince, now),
    listening: ok ? s.ports.every((p) => p.listening) : null,
    seconds_idle: secondsSince(s.clocks.idleSince, now),
    refreshed_at: new Date(s.at).toISOString(),
    error: s.error,
    skipped_lines: s.skippedLines,
    ports: s.ports.map((p) => ({
      port: p.port,
      active_connections: p.active,
      waiting_connections: p.waiting,
      listening: p.listening,
      listen_addresses: p.listenAddresses,
      other_states: p.otherStates,
    })),
  };
}

/**
 * The state file wait-for-idle.sh reads: key=value lines a POSIX shell splits with `read`
 * alone. Times are whole epoch seconds; `updated_at` is rounded down and `idle_since` up, so
 * the script may see the file as older and the port as idle for less time than they are,
 * never the other way round.
 */
export function renderStateFile(s: ConnectionsSnapshot, ports: readonly number[]): string {
  const lines = [`status=${s.error === null ? 'ok' : 'error'}`, `updated_at=${Math.floor(s.at / 1000)}`, `ports=${ports.join(',')}`];
  if (s.error === null) {
    const a = toAnswer(s, s.at);
    lines.push(
      `active_connections=${a.active_connections}`,
      `waiting_connections=${a.waiting_connections}`,
      `listening=${a.listening}`,
      `idle_since=${s.clocks.idleSince === null ? '' : Math.ceil(s.clocks.idleSince / 1000)}`,
      `quiet_since=${s.clocks.quietSince === null ? '' : Math.ceil(s.clocks.quietSince / 1000)}`,
    );
  } else {
    lines.push(`error=${s.error.replace(/[\r\n]+/g, ' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

function sum(ports: readonly PortActivity[], f: (p: PortActivity) => number): number {
  return ports.reduce((n, p) => n + f(p), 0);
}

import type { CheckObservation, Round, Verdict } from './agent-state';
import type { CensusReading } from './census';

/**
 * /signal/report: the agent's state in the JSON shape jitsi's signal-sidecar documents, for
 * tools written against it (/agent/report has this sidecar's own, fuller shape).
 *
 * The services fields come from the checks the Jitsi preset creates, found by name:
 * `jicofo` (/about/health), `jicofo-stats` (/stats) and `prosody` (/http-bind). A check
 * that is not configured (the agent set up for another service) was never seen: its
 * booleans are false, its codes 0 and its contents '', as in signal-sidecar's report
 * before its first poll. `healthy`, `status`, `weight` and `agentmessage` are the agent's
 * own verdict, whatever the configuration.
 */
export interface SignalReport {
  time: string;
  healthy: boolean;
  /** The admin status after flap mitigation; unknown until the first round has completed. */
  status: Verdict['status'] | 'unknown';
  weight: string;
  agentmessage: string;
  services: {
    jicofoHealthy: boolean;
    jicofoReachable: boolean;
    jicofoStatusCode: number;
    jicofoStatusContents: string;
    jicofoStatsReachable: boolean;
    /** The /stats answer's code under the README's name, and under the name signal-sidecar's code sends (both, so that either kind of tool reads it). */
    jicofoStatusStatusCode: number;
    jicofoStatsStatusCode: number;
    prosodyHealthy: boolean;
    prosodyReachable: boolean;
    prosodyStatusCode: number;
  };
  statuses: { statusFileFound: boolean; statusFileContents: string };
  /**
   * null where there is no reading, as signal-sidecar shows it: jicofo's before the first
   * round or when /stats could not be read; prosody's when CENSUS_POLL is off, before the
   * first census or when the last census read failed.
   */
  stats: {
    jicofoParticipants: number | null;
    jicofoConferences: number | null;
    prosodyParticipants: number | null;
    prosodySumSquaredParticipants: number | null;
  };
}

export interface SignalReportInput {
  verdict: Verdict;
  /** The last completed round; null before the first. */
  round: Round | null;
  /** Whether the load source is the Jitsi preset's read of jicofo /stats (else stats are 0). */
  jicofoStats: boolean;
  /** The last census read (CENSUS_POLL); null when off or not read yet. */
  census?: CensusReading | null;
  now: Date;
}

/** The check names the Jitsi preset gives, as the report reads them. */
export const SIGNAL_CHECKS = { jicofo: 'jicofo', jicofoStats: 'jicofo-stats', prosody: 'prosody' } as const;

export function signalReport({ verdict, round, jicofoStats, census = null, now }: SignalReportInput): SignalReport {
  const checks = new Map((round?.checks ?? []).map((c) => [c.name, c]));
  const jicofo = seen(checks.get(SIGNAL_CHECKS.jicofo));
  const stats = seen(checks.get(SIGNAL_CHECKS.jicofoStats));
  const prosody = seen(checks.get(SIGNAL_CHECKS.prosody));
  const file = round?.statusFile;
  const load = jicofoStats ? round?.load : undefined;
  return {
    time: now.toISOString(),
    healthy: verdict.healthy,
    status: round === null ? 'unknown' : verdict.status,
    weight: `${verdict.weight}%`,
    agentmessage: verdict.agentMessage.trimEnd(),
    services: {
      jicofoHealthy: jicofo.healthy,
      jicofoReachable: jicofo.reachable,
      jicofoStatusCode: jicofo.code,
      jicofoStatusContents: jicofo.body,
      jicofoStatsReachable: stats.reachable,
      jicofoStatusStatusCode: stats.code,
      jicofoStatsStatusCode: stats.code,
      prosodyHealthy: prosody.healthy,
      prosodyReachable: prosody.reachable,
      prosodyStatusCode: prosody.code,
    },
    statuses: {
      // Found means read: a missing file and one that cannot be read (a directory, no permission) are not.
      statusFileFound: file !== undefined && file.state !== 'missing' && file.state !== 'unreadable',
      statusFileContents: file?.contents ?? '',
    },
    stats: {
      jicofoParticipants: load?.value ?? null,
      jicofoConferences: load?.value === null || load?.value === undefined ? null : (load.extra?.conferences ?? null),
      prosodyParticipants: census?.ok ? census.participants : null,
      prosodySumSquaredParticipants: census?.ok ? census.sumSquaredParticipants : null,
    },
  };
}

/** A check as signal-sidecar showed it: not configured or not answered yet is false, 0, ''. */
function seen(c: CheckObservation | undefined): { healthy: boolean; reachable: boolean; code: number; body: string } {
  if (c === undefined || c.pending) return { healthy: false, reachable: false, code: 0, body: '' };
  return { healthy: c.ok, reachable: c.reachable, code: c.statusCode ?? 0, body: c.body ?? '' };
}

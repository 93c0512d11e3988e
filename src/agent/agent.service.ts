import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { HEALTH_CHECK_INPUT } from '../config/agent.schema';
import { InjectSettings } from '../config/settings';
import type { AgentConfig } from '../config/sidecar-config';
import { HealthCheckService } from '../health-check/health-check.service';
import { AgentMetrics } from './agent-metrics';
import { CheckObservation, decide, FlapState, INITIAL_STATE, observe, Policy, Round, Verdict } from './agent-state';
import type { CensusReading } from './census';
import { SignalReport, signalReport } from './signal-report';
import { DrainStatusFile } from './drain-status-file';
import { UpstreamClient } from './upstream-client';

/** What /agent/report shows. */
export interface AgentReport {
  time: string;
  healthy: boolean;
  damped: boolean;
  status: Verdict['status'];
  weight: string;
  agentMessage: string;
  reasons: string[];
  lastRoundAt: string | null;
  checks: Array<{
    name: string;
    url: string | null;
    ok: boolean;
    reachable: boolean;
    statusCode: number | null;
    softDown: boolean;
    timedOut: boolean;
    error: string | null;
    durationMs: number;
  }>;
  statusFile: { path: string; found: boolean; state: string; contents: string | null; error: string | null };
  load: { url: string; field: string; max: number; weighted: boolean; value: number | null; error: string | null } | null;
}

/**
 * Owns the agent's state: polls the upstream checks, the status file and the load source
 * every POLLING_INTERVAL (rounds never overlap), feeds each round to the state machine, and
 * answers what is reported now for the TCP agent, the HTTP endpoints and the metrics.
 */
@Injectable()
export class AgentService implements OnApplicationShutdown {
  private readonly logger = new Logger('Agent');
  private readonly policy: Policy;
  private state: FlapState = INITIAL_STATE;
  private lastRoundWallTime: Date | null = null;
  private running: Promise<void> | null = null;
  private readonly stopping = new AbortController();
  private logged: { healthy: boolean; status: string } | null = null;
  private lastCensus: CensusReading | null = null;
  private loggedAt: Date | null = null;

  constructor(
    @InjectSettings('agent') private readonly config: AgentConfig,
    private readonly client: UpstreamClient,
    private readonly statusFile: DrainStatusFile,
    private readonly metrics: AgentMetrics,
    private readonly scheduler: SchedulerRegistry,
    /** With SMEE_CHANNEL_URL: the health check's verdict is one of the agent's inputs. */
    @Inject(HealthCheckService) private readonly healthCheck: HealthCheckService | null,
  ) {
    const load = this.config.loadSource;
    this.policy = {
      dampeningMs: this.config.dampeningMs,
      graceMs: this.config.graceMs,
      load: load && { max: load.max, weighted: load.weighted },
      maxconn: this.config.maxconn,
    };
    if (this.config.graceRaisedFromMs !== null) {
      this.logger.warn({
        msg: 'DRAIN_GRACE_INTERVAL is shorter than HEALTH_DAMPENING_INTERVAL; using the dampening interval plus one second',
        drainGraceSeconds: this.config.graceRaisedFromMs / 1000,
        usedSeconds: this.config.graceMs / 1000,
      });
    }
  }

  /** Writes STATUS_INITIAL if there is no status file, runs the first round, then polls. */
  async start(): Promise<void> {
    if (this.config.statusInitial) {
      try {
        if (await this.statusFile.writeIfMissing(this.config.statusPath, this.config.statusInitial)) {
          this.logger.log({ msg: 'wrote the initial status file', path: this.config.statusPath, status: this.config.statusInitial });
        }
      } catch (e) {
        this.logger.error({ msg: 'cannot write the initial status file', path: this.config.statusPath, reason: (e as Error).message });
      }
    }
    await this.runRound();
    if (this.stopping.signal.aborted) return;
    this.scheduler.addInterval(
      'agent-poll',
      setInterval(() => void this.runRound(), this.config.pollIntervalMs),
    );
  }

  /** Runs a round, or joins the one in progress. */
  runRound(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  /** What is reported now: health after dampening and grace, admin state, weight, agent line. */
  verdict(now = performance.now()): Verdict {
    const v = decide(this.state, now, this.policy);
    this.metrics.verdict(v);
    this.logChange(v);
    return v;
  }

  /** When the reported health and state last changed (the first round counts as one); null before it. */
  get since(): Date | null {
    return this.loggedAt;
  }

  /** The verdict as /status and /agent/report show it. */
  summary(now = performance.now()) {
    const v = this.verdict(now);
    return {
      healthy: v.healthy,
      damped: v.damped,
      status: v.status,
      weight: `${v.weight}%`,
      agentMessage: v.agentMessage.trimEnd(),
      reasons: v.reasons,
    };
  }

  report(now = performance.now()): AgentReport {
    const round = this.state.last;
    const urls = new Map(this.config.upstreams.map((u) => [u.name, shownUrl(u.url)]));
    const load = this.config.loadSource;
    return {
      time: new Date().toISOString(),
      ...this.summary(now),
      lastRoundAt: this.lastRoundWallTime?.toISOString() ?? null,
      checks: (round?.checks ?? []).map((c) => ({
        name: c.name,
        url: urls.get(c.name) ?? null,
        ok: c.ok,
        reachable: c.reachable,
        statusCode: c.statusCode,
        softDown: c.softDown,
        timedOut: c.timedOut,
        error: c.error,
        durationMs: Math.round(c.durationMs),
      })),
      statusFile: {
        path: this.config.statusPath,
        found: round !== null && round.statusFile.state !== 'missing',
        state: round?.statusFile.state ?? 'unknown',
        contents: round?.statusFile.contents ?? null,
        error: round?.statusFile.error ?? null,
      },
      load: load && {
        url: shownUrl(load.url),
        field: load.field,
        max: load.max,
        weighted: load.weighted,
        value: round?.load?.value ?? null,
        error: round?.load?.error ?? (round ? null : 'not read yet'),
      },
    };
  }

  /** The same state in signal-sidecar's documented shape (/signal/report). */
  signalReport(now = performance.now()): SignalReport {
    return signalReport({
      verdict: this.verdict(now),
      round: this.state.last,
      jicofoStats: this.config.preset === 'jitsi',
      census: this.lastCensus,
      now: new Date(),
    });
  }

  /** The last census read (CENSUS_POLL), or why the last read failed; null when off or not read yet. */
  get census(): { enabled: boolean; reading: CensusReading | null } {
    return { enabled: this.config.census !== null, reading: this.lastCensus };
  }

  /** The last read decides (a failed one shows null counts, not stale ones); failures are logged once per change. */
  private noteCensus(r: CensusReading): void {
    const before = this.lastCensus;
    if (!r.ok && before !== null && !before.ok && before.error === r.error) return;
    if (!r.ok) this.logger.warn({ msg: 'census read failed', reason: r.error });
    else if (before !== null && !before.ok) this.logger.log({ msg: 'census read again' });
    this.lastCensus = r;
  }

  onApplicationShutdown(): Promise<void> | undefined {
    if (this.scheduler.doesExist('interval', 'agent-poll')) this.scheduler.deleteInterval('agent-poll');
    this.stopping.abort();
    return this.running ?? undefined;
  }

  private async round(): Promise<void> {
    const stop = this.stopping.signal;
    const load = this.config.loadSource;
    const census = this.config.census;
    const [checks, statusFile, loadReading, censusReading] = await Promise.all([
      Promise.all(this.config.upstreams.map((u) => this.client.check(u, stop))),
      this.statusFile.read(this.config.statusPath),
      load ? this.client.readLoad(load, stop) : Promise.resolve(null),
      census ? this.client.census(census, stop) : Promise.resolve(null),
    ]);
    // A round cut short by shutdown says nothing about the upstreams.
    if (stop.aborted) return;
    if (censusReading) this.noteCensus(censusReading);
    if (this.healthCheck) checks.push(this.healthCheckInput(this.healthCheck));
    const round: Round = { at: performance.now(), checks, statusFile, load: loadReading };
    this.logRoundChanges(this.state.last, round);
    this.state = observe(this.state, round);
    this.lastRoundWallTime = new Date();
    this.metrics.round(round);
    this.verdict(round.at);
  }

  /** The smee round trip as one more check: failing is hard; before its first result, pending. */
  private healthCheckInput(hc: HealthCheckService): CheckObservation {
    const last = hc.last;
    const ok = last?.status === 'success';
    return {
      name: HEALTH_CHECK_INPUT,
      ok,
      softDown: false,
      pending: last === null,
      reachable: last !== null,
      statusCode: null,
      timedOut: false,
      error: last === null ? 'no result yet' : ok ? null : last.message,
      durationMs: last?.roundTripMs ?? 0,
    };
  }

  private logRoundChanges(before: Round | null, now: Round): void {
    const previous = new Map((before?.checks ?? []).map((c) => [c.name, c]));
    for (const c of now.checks) {
      const was = previous.get(c.name);
      if (c.pending || (was && was.ok === c.ok && was.statusCode === c.statusCode && was.error === c.error)) continue;
      if (c.ok) {
        if (was) this.logger.log({ msg: 'upstream check passes again', check: c.name, statusCode: c.statusCode });
      } else {
        this.logger.warn({
          msg: 'upstream check failed',
          check: c.name,
          statusCode: c.statusCode,
          softDown: c.softDown,
          timedOut: c.timedOut,
          error: c.error,
        });
      }
    }
    if (before?.statusFile.state !== now.statusFile.state) {
      const fields = {
        msg: 'status file',
        path: this.config.statusPath,
        state: now.statusFile.state,
        contents: now.statusFile.contents,
        error: now.statusFile.error,
      };
      if (['ready', 'drain', 'maint'].includes(now.statusFile.state)) this.logger.log(fields);
      else this.logger.warn(fields);
    }
    if (now.load && now.load.error !== null && now.load.error !== before?.load?.error) {
      this.logger.warn({ msg: 'cannot read the load source', url: shownUrl(this.config.loadSource!.url), error: now.load.error });
    }
  }

  private logChange(v: Verdict): void {
    if (this.state.last === null) return;
    if (this.logged && this.logged.healthy === v.healthy && this.logged.status === v.status) return;
    this.logged = { healthy: v.healthy, status: v.status };
    this.loggedAt = new Date();
    const fields = { msg: 'agent state', healthy: v.healthy, damped: v.damped, status: v.status, weight: v.weight, reasons: v.reasons };
    if (v.healthy) this.logger.log(fields);
    else this.logger.warn(fields);
  }
}

/** Scheme, host and path: never credentials or a query, which may carry a token. */
function shownUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

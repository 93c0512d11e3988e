import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectMetric, makeCounterProvider, makeGaugeProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { AxiosInstance } from 'axios';
import { createHttpClient } from '../common/http-client';
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { InjectSettings } from '../config/settings';
import type { HealthCheckConfig } from '../config/sidecar-config';
import { CheckResult, HealthStatusFile } from './health-status-file';
import { HEALTH_SIGNATURE_HEADER, WebhookAuth } from '../relay/webhook-auth/webhook-auth';
import { RoundTrips } from './round-trips';

export const HEALTH_CHECK_METRICS = [
  makeGaugeProvider({ name: 'health_check', help: 'Result of the last end-to-end health check: 1 succeeded, 0 not.' }),
  makeCounterProvider({
    name: 'sidecar_health_checks_total',
    help: 'End-to-end health checks by result: success, timeout, server_error (the smee server answered non-2xx), post_failed.',
    labelNames: ['result'],
  }),
  makeHistogramProvider({
    name: 'sidecar_health_check_round_trip_seconds',
    help: 'Time from posting a health-check event to the smee server until it came back through the client.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60],
  }),
];

export const SUCCESS_MESSAGE = 'Health check completed successfully';
export const TIMEOUT_MESSAGE = 'Health check timed out waiting for event round-trip';

const OUTCOMES = ['success', 'timeout', 'server_error', 'post_failed'] as const;
type Outcome = (typeof OUTCOMES)[number];

/** Completed checks kept for /status and the status page: 30 × the 30 s default is a quarter of an hour. */
export const HISTORY_LENGTH = 30;

/** One completed check as /status lists it. */
export interface CheckRecord {
  checkedAt: string;
  status: 'success' | 'failure';
  reason: Outcome;
  roundTripMs: number | null;
}

/**
 * The end-to-end check: post an event with a fresh id to the smee channel and wait for the
 * smee client to bring it back to the relay port. Runs at start-up and then on an interval,
 * never two at once; every result is written to the status file.
 */
@Injectable()
export class HealthCheckService implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('HealthCheck');
  private readonly http: AxiosInstance;
  private running: Promise<CheckResult> | null = null;
  private lastResult: CheckResult | null = null;
  private lastStart = 0;
  private readonly records: CheckRecord[] = [];
  private statusSince: Date | null = null;
  private stop: () => void = () => undefined;

  constructor(
    @InjectSettings('healthCheck') private readonly config: HealthCheckConfig,
    private readonly roundTrips: RoundTrips,
    private readonly statusFile: HealthStatusFile,
    private readonly scheduler: SchedulerRegistry,
    @InjectMetric('health_check') private readonly gauge: Gauge,
    @InjectMetric('sidecar_health_checks_total') private readonly checks: Counter<'result'>,
    @InjectMetric('sidecar_health_check_round_trip_seconds') private readonly roundTrip: Histogram,
    /** With webhook secrets configured: the check's own events are signed, as a real sender's would be. */
    @Inject(WebhookAuth) private readonly auth: WebhookAuth | null,
  ) {
    // A fresh connection per check, as smee-sidecar does: a pooled socket to a proxy in
    // front of the smee server can go stale between checks 30 s apart.
    this.http = createHttpClient({
      httpAgent: new HttpAgent({ keepAlive: false }),
      httpsAgent: new HttpsAgent({ keepAlive: false, rejectUnauthorized: !this.config.insecureSkipVerify }),
      validateStatus: () => true,
      maxRedirects: 0,
      responseType: 'text',
    });
    this.gauge.set(0);
    for (const result of OUTCOMES) this.checks.labels(result).inc(0);
  }

  /** The last completed check, or null before the first one ends. */
  get last(): CheckResult | null {
    return this.lastResult;
  }

  /** The last completed checks, oldest first (at most HISTORY_LENGTH). */
  get history(): readonly CheckRecord[] {
    return this.records;
  }

  /** When the last check's status (success or failure) began: the first check that had it in the current run. */
  get since(): Date | null {
    return this.statusSince;
  }

  /** The configured interval between checks, in milliseconds. */
  get intervalMs(): number {
    return this.config.intervalMs;
  }

  /**
   * Whether the check loop is still turning: a check started within two intervals plus a
   * timeout. A stuck loop makes /healthz fail, so Kubernetes restarts the sidecar.
   */
  get loopAlive(): boolean {
    return this.lastStart > 0 && performance.now() - this.lastStart <= 2 * this.config.intervalMs + this.config.timeoutMs;
  }

  /** The probe scripts are in place before anything is served: a probe right after start-up finds them. */
  onModuleInit(): Promise<void> {
    return this.statusFile.installProbes();
  }

  /** Checks from when every module is up (the relay listens for the events coming back). */
  onApplicationBootstrap(): void {
    this.start();
  }

  /** Runs the first check now and schedules the rest. */
  start(): void {
    void this.runOnce();
    this.scheduler.addInterval(
      'health-check',
      setInterval(() => void this.runOnce(), this.config.intervalMs),
    );
  }

  /** Runs a check, or joins the one in progress. */
  runOnce(): Promise<CheckResult> {
    this.running ??= this.check().finally(() => (this.running = null));
    return this.running;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'health-check')) this.scheduler.deleteInterval('health-check');
    this.stop();
    await this.running;
  }

  private async check(): Promise<CheckResult> {
    const id = randomUUID();
    const started = performance.now();
    this.lastStart = started;
    const expectation = this.roundTrips.expect(id);
    const arrivedAt = expectation.arrived.then(() => performance.now());
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.config.timeoutMs)));
    const stopped = new Promise<'stopped'>((r) => (this.stop = () => r('stopped')));
    let outcome: Outcome | 'stopped';
    let message = TIMEOUT_MESSAGE;
    let roundTripMs: number | undefined;
    try {
      // The event may well come back before the server's answer to the POST; it waits in `arrivedAt`.
      const post = await Promise.race([this.post(id), deadline, stopped]);
      if (post === 'timeout' || post === 'stopped') {
        outcome = post;
      } else if (post.error !== undefined) {
        [outcome, message] = ['post_failed', `Failed to POST to smee server: ${post.error}`];
      } else if (post.status < 200 || post.status > 299) {
        [outcome, message] = ['server_error', `Smee server answered ${post.status} to the health-check POST`];
      } else {
        const arrived = await Promise.race([arrivedAt, deadline, stopped]);
        if (typeof arrived === 'number') {
          [outcome, message, roundTripMs] = ['success', SUCCESS_MESSAGE, arrived - started];
        } else {
          outcome = arrived;
        }
      }
    } finally {
      clearTimeout(timer);
      expectation.cancel();
    }
    const result: CheckResult = { status: outcome === 'success' ? 'success' : 'failure', message, checkedAt: new Date(), roundTripMs };
    // A check cut short by shutdown says nothing about the smee client: keep the last status.
    if (outcome === 'stopped') return this.lastResult ?? result;
    this.record(outcome, result);
    await this.statusFile.write(result);
    return result;
  }

  private async post(id: string): Promise<{ status: number; error?: undefined } | { status?: undefined; error: string }> {
    try {
      const body = Buffer.from(JSON.stringify({ type: 'health-check', id }));
      const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Health-Check-ID': id };
      // With webhook secrets, the relay verifies health-check events too: ours are signed with the first secret.
      const signature = this.auth?.signHealthEvent(body) ?? null;
      if (signature !== null) headers[HEALTH_SIGNATURE_HEADER] = signature;
      const res = await this.http.post(this.config.channelUrl, body, {
        headers,
        timeout: this.config.timeoutMs,
      });
      return { status: res.status };
    } catch (e) {
      const err = e as { code?: string; message: string };
      return { error: err.code ? `${err.code} ${err.message}` : err.message };
    }
  }

  private record(outcome: Outcome, result: CheckResult): void {
    if (this.lastResult?.status !== result.status) this.statusSince = result.checkedAt;
    this.lastResult = result;
    this.records.push({
      checkedAt: result.checkedAt.toISOString(),
      status: result.status,
      reason: outcome,
      roundTripMs: result.roundTripMs === undefined ? null : Math.round(result.roundTripMs),
    });
    if (this.records.length > HISTORY_LENGTH) this.records.shift();
    this.gauge.set(outcome === 'success' ? 1 : 0);
    this.checks.labels(outcome).inc();
    if (result.roundTripMs !== undefined) this.roundTrip.observe(result.roundTripMs / 1000);
    const fields = {
      msg: 'health check',
      status: result.status,
      reason: outcome,
      message: result.message,
      roundTripMs: result.roundTripMs && Math.round(result.roundTripMs),
    };
    if (outcome === 'success') this.logger.debug(fields);
    else this.logger.warn(fields);
  }
}

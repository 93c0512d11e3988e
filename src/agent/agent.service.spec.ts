import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { loadConfig } from '../config/load-config';
import type { AdminStatus, LoadSourceConfig, UpstreamCheckConfig } from '../config/sidecar-config';
import { HealthCheckService } from '../health-check/health-check.service';
import { type CheckObservation, type LoadReading, parseStatusFile, type StatusFileReading } from './agent-state';
import { AgentModule } from './agent.module';
import { AgentService } from './agent.service';
import { DrainStatusFile } from './drain-status-file';
import { UpstreamClient } from './upstream-client';
import { passingCheck } from '../../test/support/check-observation';

/**
 * AgentService as AgentModule builds it from a loaded configuration, with the network and
 * the status file replaced: what each round's observations make it report, and how rounds
 * are run (one at a time, every POLLING_INTERVAL, none after shutdown).
 */

const DAMPENING_MS = 30_000;
const GRACE_MS = 60_000;
const POLL_MS = 5_000;

const passing = (name: string): CheckObservation => passingCheck(name, { durationMs: 4 });
const answering = (status: number, softDown = false) => ({ ok: false, statusCode: status, softDown });

/** The upstream checks and the load source, answering what a test sets; a round may be held open. */
class FakeUpstreams {
  readonly answers = new Map<string, Partial<CheckObservation>>();
  load: LoadReading = { value: 0, error: null };
  checks = 0;
  readonly signals: AbortSignal[] = [];
  private held: { promise: Promise<void>; release: () => void } | null = null;

  /** Until release() is called, checks do not answer (or answer "aborted" once the service stops). */
  hold(): () => void {
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.held = { promise, release };
    return () => {
      this.held = null;
      release();
    };
  }

  async check(u: UpstreamCheckConfig, stop: AbortSignal): Promise<CheckObservation> {
    this.checks++;
    this.signals.push(stop);
    if (this.held) {
      const aborted = new Promise<'aborted'>((r) => stop.addEventListener('abort', () => r('aborted'), { once: true }));
      if ((await Promise.race([this.held.promise, aborted])) === 'aborted') {
        // As a real request does, it takes a moment to give up.
        await new Promise((r) => setTimeout(r, 20));
        return { ...passing(u.name), ok: false, reachable: false, statusCode: null, error: 'aborted' };
      }
    }
    return { ...passing(u.name), ...this.answers.get(u.name) };
  }

  readLoad(_source: LoadSourceConfig, _stop: AbortSignal): Promise<LoadReading> {
    return Promise.resolve(this.load);
  }

  census(): Promise<never> {
    return Promise.reject(new Error('the census is not configured in these tests'));
  }
}

/** The status file as text an operator wrote, parsed as the real reader parses it. */
class FakeStatusFile {
  text: string | null = 'ready\n';
  readonly written: Array<[string, AdminStatus]> = [];

  read(_path: string): Promise<StatusFileReading> {
    return Promise.resolve(this.text === null ? { state: 'missing', contents: null, error: 'ENOENT' } : parseStatusFile(this.text));
  }

  writeIfMissing(path: string, state: AdminStatus): Promise<boolean> {
    if (this.text !== null) return Promise.resolve(false);
    this.written.push([path, state]);
    this.text = `${state}\n`;
    return Promise.resolve(true);
  }
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = register.getSingleMetric(name);
  if (!m) return undefined;
  const { values } = await m.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('AgentService', () => {
  let dir: string;
  let upstreams: FakeUpstreams;
  let statusFile: FakeStatusFile;
  let moduleRef: TestingModule | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-service-'));
    upstreams = new FakeUpstreams();
    statusFile = new FakeStatusFile();
  });
  afterEach(async () => {
    jest.useRealTimers();
    await moduleRef?.close();
    moduleRef = undefined;
    register.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The agent as the sidecar would build it from `env` (and an optional SIDECAR_CONFIG YAML). */
  async function build(
    env: Record<string, string> = {},
    options: { yaml?: string; healthCheck?: Pick<HealthCheckService, 'last'> } = {},
  ): Promise<AgentService> {
    const loaded = loadConfig(
      {
        SHARED_VOLUME_PATH: dir,
        UPSTREAM_HEALTH_URLS: 'http://app.test:8080/health,http://db.test:5432/ready',
        HEALTH_DAMPENING_INTERVAL: String(DAMPENING_MS / 1000),
        DRAIN_GRACE_INTERVAL: String(GRACE_MS / 1000),
        POLLING_INTERVAL: String(POLL_MS / 1000),
        ...(options.yaml === undefined ? {} : { SIDECAR_CONFIG: 'sidecar.yaml' }),
        ...env,
      },
      () => options.yaml ?? '',
    );
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    let builder = Test.createTestingModule({
      imports: [ScheduleModule.forRoot(), AgentModule.forRoot(loaded.config, { healthCheck: null })],
    })
      .overrideProvider(UpstreamClient)
      .useValue(upstreams)
      .overrideProvider(DrainStatusFile)
      .useValue(statusFile);
    if (options.healthCheck) builder = builder.overrideProvider(HealthCheckService).useValue(options.healthCheck);
    moduleRef = await builder.compile();
    return moduleRef.get(AgentService);
  }

  it('reports down and drained, with the reason, before the first round', async () => {
    const agent = await build();
    const v = agent.verdict();
    expect(v).toMatchObject({ healthy: false, status: 'drain', weight: 0, agentMessage: 'down drain 0%\n' });
    expect(v.reasons).toEqual(['no round of checks has completed yet']);
    expect(agent.since).toBeNull();
    expect(await metric('sidecar_agent_healthy')).toBe(0);
  });

  it('reports up, ready, 100% once a round sees every check pass and the file say ready', async () => {
    const agent = await build();
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ healthy: true, damped: false, status: 'ready', weight: 100, agentMessage: 'up ready 100%\n' });
    expect(agent.since).toBeInstanceOf(Date);
    expect(await metric('sidecar_agent_healthy')).toBe(1);
    expect(await metric('sidecar_agent_status', { status: 'ready' })).toBe(1);
    expect(await metric('sidecar_agent_checks_total', { check: 'app.test:8080/health', result: 'ok' })).toBe(1);
  });

  it('goes down at once on a failing check, and comes back only after the dampening interval', async () => {
    const agent = await build();
    await agent.runRound();
    upstreams.answers.set('db.test:5432/ready', answering(500));
    await agent.runRound();
    const down = agent.verdict();
    expect(down).toMatchObject({ healthy: false, damped: false });
    expect(down.agentMessage).toMatch(/^down /);
    expect(down.reasons).toContain('db.test:5432/ready: answered 500');
    expect(await metric('sidecar_agent_checks_total', { check: 'db.test:5432/ready', result: 'down' })).toBe(1);
    expect(await metric('sidecar_agent_check_up', { check: 'db.test:5432/ready' })).toBe(0);

    upstreams.answers.clear();
    await agent.runRound();
    const unhealthySeenAt = performance.now();
    // The round passed, but the last unhealthy one was moments ago.
    expect(agent.verdict()).toMatchObject({ healthy: false, damped: true });
    expect(await metric('sidecar_agent_damped')).toBe(1);
    expect(agent.verdict(unhealthySeenAt + DAMPENING_MS - 1000)).toMatchObject({ healthy: false, damped: true });
    expect(agent.verdict(unhealthySeenAt + DAMPENING_MS + 1)).toMatchObject({
      healthy: true,
      damped: false,
      agentMessage: 'up ready 100%\n',
    });
  });

  it('drains instead of going down while only soft-down checks fail, for the drain grace', async () => {
    const agent = await build();
    await agent.runRound();
    upstreams.answers.set('app.test:8080/health', answering(503, true));
    await agent.runRound();
    const firstSoftAt = performance.now();
    expect(agent.verdict()).toMatchObject({ healthy: true, damped: true, status: 'drain', weight: 0, agentMessage: 'up drain 0%\n' });
    // Past the grace: down, with the status file's admin state again.
    expect(agent.verdict(firstSoftAt + GRACE_MS - 1000)).toMatchObject({ healthy: true, status: 'drain' });
    expect(agent.verdict(firstSoftAt + GRACE_MS + 1)).toMatchObject({ healthy: false, damped: false, agentMessage: 'down ready 100%\n' });

    // A hard failure beside it ends the grace at once.
    upstreams.answers.set('db.test:5432/ready', answering(500));
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ healthy: false, damped: false });
  });

  it('gives no grace to a node that was never healthy', async () => {
    upstreams.answers.set('app.test:8080/health', answering(503, true));
    const agent = await build();
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ healthy: false, damped: false });
  });

  it.each([
    ['drain', 'up drain 0%\n'],
    ['  MAINT \n', 'up maint 0%\n'],
  ])('obeys the status file %j: that state at weight 0, still up', async (text, line) => {
    const agent = await build();
    statusFile.text = text;
    await agent.runRound();
    const v = agent.verdict();
    expect(v).toMatchObject({ healthy: true, weight: 0, agentMessage: line });
    expect(v.reasons).toEqual([`status file says ${text.trim().toLowerCase()}`]);
    expect(await metric('sidecar_agent_weight_percent')).toBe(0);
    expect(await metric('sidecar_agent_status_file', { state: text.trim().toLowerCase() })).toBe(1);
  });

  it('takes a node whose status file is missing or holds something else down and drained', async () => {
    const agent = await build();
    statusFile.text = null;
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ healthy: false, status: 'drain', agentMessage: 'down drain 0%\n' });
    expect(agent.verdict().reasons).toContain('status file is missing: unhealthy and drained');
    statusFile.text = 'readyy';
    await agent.runRound();
    expect(agent.verdict().reasons).toContain('status file holds "readyy", not ready, drain or maint: unhealthy and drained');
  });

  it('weighs by the free share of a weighted load source, and drains above its maximum', async () => {
    const agent = await build({}, { yaml: 'agent:\n  loadSource: { url: "http://app.test:8080/stats", field: participants, max: 200 }\n' });
    upstreams.load = { value: 50, error: null };
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ status: 'ready', weight: 75, agentMessage: 'up ready 75%\n' });
    upstreams.load = { value: null, error: 'no field participants' };
    await agent.runRound();
    expect(agent.verdict().weight).toBe(1);
    expect(await metric('sidecar_agent_load_errors_total')).toBe(1);
    upstreams.load = { value: 201, error: null };
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ status: 'drain', weight: 0 });
    expect(agent.verdict().reasons).toContain('load 201 is above the maximum 200');
  });

  it('joins the round in progress instead of starting another', async () => {
    const agent = await build();
    const release = upstreams.hold();
    const first = agent.runRound();
    const second = agent.runRound();
    expect(second).toBe(first);
    expect(upstreams.checks).toBe(2); // one per configured check, once
    release();
    await first;
    await agent.runRound();
    expect(upstreams.checks).toBe(4);
  });

  it('polls every POLLING_INTERVAL, skips ticks while a round is still running, and stops on shutdown', async () => {
    const agent = await build();
    jest.useFakeTimers({ doNotFake: ['performance', 'nextTick', 'setImmediate', 'queueMicrotask'] });
    await agent.start();
    expect(upstreams.checks).toBe(2);
    await jest.advanceTimersByTimeAsync(POLL_MS * 3);
    expect(upstreams.checks).toBe(8);

    const release = upstreams.hold();
    await jest.advanceTimersByTimeAsync(POLL_MS * 4); // one round starts and hangs; the three ticks after join it
    expect(upstreams.checks).toBe(10);
    release();
    await jest.advanceTimersByTimeAsync(POLL_MS);
    expect(upstreams.checks).toBe(12);

    await moduleRef!.close();
    moduleRef = undefined;
    await jest.advanceTimersByTimeAsync(POLL_MS * 3);
    expect(upstreams.checks).toBe(12);
  });

  it('writes STATUS_INITIAL when there is no status file, and leaves an existing one alone', async () => {
    statusFile.text = null;
    const agent = await build({ STATUS_INITIAL: 'drain' });
    await agent.start();
    expect(statusFile.written).toEqual([[join(dir, 'shard-status'), 'drain']]);
    expect(agent.verdict()).toMatchObject({ healthy: true, status: 'drain' });
    await moduleRef!.close();
    register.clear();

    statusFile.text = 'maint';
    statusFile.written.length = 0;
    const again = await build({ STATUS_INITIAL: 'ready' });
    await again.start();
    expect(statusFile.written).toEqual([]);
    expect(again.verdict().status).toBe('maint');
  });

  it('records nothing from a round cut short by shutdown, and shutdown waits for it', async () => {
    const agent = await build();
    upstreams.hold();
    let ended = false;
    const round = agent.runRound().then(() => (ended = true));
    await moduleRef!.close();
    moduleRef = undefined;
    expect(ended).toBe(true);
    await round;
    expect(upstreams.signals.every((s) => s.aborted)).toBe(true);
    expect(agent.verdict().reasons).toEqual(['no round of checks has completed yet']);
    expect(agent.report().lastRoundAt).toBeNull();
  });

  it('counts the smee round trip as a check when the health check is on: pending, failing, passing', async () => {
    const healthCheck: { last: HealthCheckService['last'] } = { last: null };
    const agent = await build({}, { healthCheck });
    await agent.runRound();
    expect(agent.verdict()).toMatchObject({ healthy: false, damped: false });
    expect(agent.verdict().reasons).toContain('health-check: no result yet');

    healthCheck.last = {
      status: 'failure',
      message: 'Smee server answered 502',
      checkedAt: new Date(),
      roundTripMs: undefined,
    };
    await agent.runRound();
    expect(agent.verdict().healthy).toBe(false);
    expect(agent.report().checks.find((c) => c.name === 'health-check')).toMatchObject({ ok: false, error: 'Smee server answered 502' });

    healthCheck.last = { status: 'success', message: 'ok', checkedAt: new Date(), roundTripMs: 120 };
    await agent.runRound();
    // Passing now, but the failing round before it is within the dampening interval.
    expect(agent.verdict()).toMatchObject({ healthy: false, damped: true });
    expect(agent.verdict(performance.now() + DAMPENING_MS + 1).healthy).toBe(true);
  });

  it('shows upstream URLs in the report without their credentials or query', async () => {
    const agent = await build({ UPSTREAM_HEALTH_URLS: 'http://probe:s3cr3t-pass@app.test:8080/health?token=t0k3n-value' });
    upstreams.answers.set('app.test:8080/health', answering(500));
    await agent.runRound();
    const report = agent.report();
    expect(report.checks).toEqual([
      expect.objectContaining({ name: 'app.test:8080/health', url: 'http://app.test:8080/health', statusCode: 500 }),
    ]);
    expect(report.healthy).toBe(false);
    expect(report.statusFile).toMatchObject({ found: true, state: 'ready', contents: 'ready' });
    expect(Date.parse(report.lastRoundAt!)).not.toBeNaN();
    const text = JSON.stringify(report);
    expect(text).not.toContain('s3cr3t');
    expect(text).not.toContain('t0k3n');
  });
});

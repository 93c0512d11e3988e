import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { register } from 'prom-client';
import request from 'supertest';
import { AgentService } from '../src/agent/agent.service';
import type { SidecarConfig } from '../src/config/sidecar-config';
import { Sidecar, startSidecar } from '../src/sidecar';
import { agentLine, askAgent } from './support/agent-client';
import { FakeUpstream } from './support/fake-upstream';
import { LoopbackChannel } from './support/loopback-channel';
import { eventually, freePort, testConfig } from './support/sidecar';

type Started = Sidecar & { config: SidecarConfig; managementUrl: string; port: number; statusPath: string };

/** An in-process sidecar with the agent on an ephemeral port; `tweak` may change the loaded config. */
async function startAgent(env: Record<string, string>, tweak?: (c: SidecarConfig) => void): Promise<Started> {
  register.clear();
  const config = testConfig({
    AGENT_PORT: '1',
    HEALTH_DAMPENING_INTERVAL: '0',
    DRAIN_GRACE_INTERVAL: '0',
    POLLING_INTERVAL: '0.05',
    ...env,
  });
  config.agent!.port = 0;
  tweak?.(config);
  const s = await startSidecar(config);
  return { ...s, config, managementUrl: `http://127.0.0.1:${s.managementPort}`, port: s.agentPort!, statusPath: config.agent!.statusPath };
}

/** Replaces the status file as an operator should (rename), so no round reads it half-written. */
function writeStatus(path: string, text: string | Buffer): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

async function metric(s: Started, series: string): Promise<number | undefined> {
  const text = (await request(s.managementUrl).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const report = async (s: Started) => (await request(s.managementUrl).get('/agent/report')).body;
const until = (s: Started, line: string, ms = 3000) =>
  eventually(async () => ((await agentLine(s.port)) === line ? true : undefined), ms, JSON.stringify(line));

describe('agent (drain control and HAProxy agent-check)', () => {
  const upstream = new FakeUpstream();
  let sidecar: Started | undefined;
  const run = async (env: Record<string, string>, tweak?: (c: SidecarConfig) => void) => (sidecar = await startAgent(env, tweak));

  beforeAll(() => upstream.listen());
  afterAll(() => upstream.close());
  beforeEach(() => {
    upstream.answer('/health', { status: 200, body: 'ok' });
    upstream.hits.clear();
  });
  afterEach(async () => {
    await sidecar?.close();
    sidecar = undefined;
  });

  describe('the agent port', () => {
    it('answers one exact line and then closes its side gracefully', async () => {
      const s = await run({ STATUS_INITIAL: 'ready', UPSTREAM_HEALTH_URLS: `${upstream.url}/health` });
      const a = await askAgent(s.port);
      expect(a.text).toBe('up ready 100%\n');
      expect(Buffer.byteLength(a.text)).toBe(14);
      expect(a.ended).toBe(true);
    });

    it('reads and ignores what the peer sends (agent-send), however much', async () => {
      const s = await run({ STATUS_INITIAL: 'ready' });
      expect((await askAgent(s.port, { send: 'be_app/srv1\n' })).text).toBe('up ready 100%\n');
      const big = await askAgent(s.port, { send: Buffer.alloc(256 * 1024, 'x') });
      expect(big).toMatchObject({ text: 'up ready 100%\n', ended: true });
    });

    it('gives each of 200 concurrent connections the whole line', async () => {
      const s = await run({ STATUS_INITIAL: 'ready' });
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => askAgent(s.port, i % 2 ? { send: 'x\n' } : {})));
      expect(answers.filter((a) => a.text !== 'up ready 100%\n' || !a.ended)).toEqual([]);
      expect(await metric(s, 'sidecar_agent_replies_total')).toBe(200);
    });

    it('cuts a peer that never closes its side after the connection timeout', async () => {
      const s = await run({ STATUS_INITIAL: 'ready' }, (c) => (c.agent!.connectionTimeoutMs = 300));
      const a = await askAgent(s.port, { keepOpen: true });
      expect(a.text).toBe('up ready 100%\n');
      expect(a.ms).toBeLessThan(200); // the reply and the FIN come at once
      expect(a.closedMs).toBeGreaterThanOrEqual(250);
      expect(a.closedMs).toBeLessThan(2000);
    });

    it('appends maxconn when AGENT_MAXCONN is set', async () => {
      const s = await run({ STATUS_INITIAL: 'ready', AGENT_MAXCONN: '25' });
      expect(await agentLine(s.port)).toBe('up ready 100% maxconn:25\n');
    });

    it('listens only after the first round: its first answer is already informed', async () => {
      upstream.answer('/slow', { hang: true });
      const started = performance.now();
      const s = await run({ STATUS_INITIAL: 'drain', UPSTREAM_HEALTH_URLS: `${upstream.url}/health`, UPSTREAM_TIMEOUT_SECONDS: '0.3' });
      expect(await agentLine(s.port)).toBe('up drain 0%\n');
      expect(performance.now() - started).toBeLessThan(3000);
    });

    it('is optional: without AGENT_PORT the report and metrics still work', async () => {
      register.clear();
      const config = testConfig({ UPSTREAM_HEALTH_URLS: `${upstream.url}/health`, STATUS_INITIAL: 'ready' });
      const s = await startSidecar(config);
      sidecar = { ...s, config, managementUrl: `http://127.0.0.1:${s.managementPort}`, port: 0, statusPath: config.agent!.statusPath };
      expect(s.agentPort).toBeNull();
      expect(s.relayPort).toBeNull();
      expect((await request(sidecar.managementUrl).get('/agent/health')).status).toBe(200);
      expect((await request(sidecar.managementUrl).get('/readyz')).status).toBe(200);
    });
  });

  describe('the status file', () => {
    it('is obeyed in any case and with blanks; drain and maint weigh 0%', async () => {
      const s = await run({ STATUS_INITIAL: 'ready' });
      writeStatus(s.statusPath, '  DRAIN\n');
      await until(s, 'up drain 0%\n');
      expect((await request(s.managementUrl).get('/agent/health')).status).toBe(200);
      writeStatus(s.statusPath, 'Maint');
      await until(s, 'up maint 0%\n');
      writeStatus(s.statusPath, 'ready');
      await until(s, 'up ready 100%\n');
    });

    it.each([
      ['unhealthy', 'unhealthy', 'unhealthy'],
      ['garbage', 'bananas', 'invalid'],
      ['binary', Buffer.from([0, 0xff, 0xfe, 0x01, 0x80]), 'invalid'],
      ['huge', Buffer.alloc(5 * 1024 * 1024, 'ready '), 'invalid'],
      ['empty', '', 'invalid'],
    ])('%s: down and drained, reported, nothing else changes', async (_what, content, state) => {
      const s = await run({ STATUS_INITIAL: 'ready' });
      writeStatus(s.statusPath, content);
      await until(s, 'down drain 0%\n');
      const res = await request(s.managementUrl).get('/agent/report');
      expect(res.status).toBe(503);
      expect(res.body.statusFile).toMatchObject({ path: s.statusPath, found: true, state });
      expect(res.body.reasons.join('\n')).toMatch(/status file/);
      expect(await metric(s, `sidecar_agent_status_file{state="${state}"}`)).toBe(1);
      writeStatus(s.statusPath, 'ready');
      await until(s, 'up ready 100%\n');
    });

    it('missing: down and drained', async () => {
      const s = await run({});
      expect(existsSync(s.statusPath)).toBe(false);
      expect(await agentLine(s.port)).toBe('down drain 0%\n');
      expect((await report(s)).statusFile).toMatchObject({ found: false, state: 'missing', contents: null });
    });

    it('unreadable (a directory): down and drained, with the reason', async () => {
      const s = await run({ STATUS_PATH: require('node:os').tmpdir() });
      expect(await agentLine(s.port)).toBe('down drain 0%\n');
      expect((await report(s)).statusFile).toMatchObject({ state: 'unreadable', error: 'EISDIR' });
    });

    it('STATUS_INITIAL writes the file when there is none, and leaves an existing one alone', async () => {
      const s = await run({ STATUS_INITIAL: 'ready' });
      expect(readFileSync(s.statusPath, 'utf8')).toBe('ready\n');
      writeStatus(s.statusPath, 'drain');
      await s.close();
      sidecar = undefined;
      const again = await run({ STATUS_INITIAL: 'ready', SHARED_VOLUME_PATH: s.config.sharedVolume.path });
      expect(readFileSync(again.statusPath, 'utf8')).toBe('drain');
      expect(await agentLine(again.port)).toBe('up drain 0%\n');
    });
  });

  describe('upstream checks, dampening and grace', () => {
    it('a hard failure is down at once; recovery waits out the dampening', async () => {
      const s = await run({
        STATUS_INITIAL: 'ready',
        UPSTREAM_HEALTH_URLS: `${upstream.url}/health`,
        HEALTH_DAMPENING_INTERVAL: '0.6',
        DRAIN_GRACE_INTERVAL: '5',
      });
      expect(await agentLine(s.port)).toBe('up ready 100%\n');
      upstream.answer('/health', { status: 500, body: '<html><body>Internal Server Error</body></html>', contentType: 'text/html' });
      await until(s, 'down ready 100%\n');
      const bad = await request(s.managementUrl).get('/agent/report');
      expect(bad.status).toBe(503);
      expect((await request(s.managementUrl).get('/signal/report')).status).toBe(503);
      expect(bad.body.checks[0]).toMatchObject({
        name: `127.0.0.1:${new URL(upstream.url).port}/health`,
        ok: false,
        reachable: true,
        statusCode: 500,
        softDown: false,
      });
      expect((await request(s.managementUrl).get('/agent/health')).text).toBe('NOT_OK');

      upstream.answer('/health', { status: 200, body: 'ok' });
      const recovered = performance.now();
      await eventually(async () => ((await report(s)).checks[0].ok ? true : undefined), 2000, 'check passing');
      const damped = await report(s);
      expect(damped).toMatchObject({ healthy: false, damped: true, agentMessage: 'down ready 100%' });
      expect(damped.reasons.join()).toMatch(/^dampening/);
      await until(s, 'up ready 100%\n');
      expect(performance.now() - recovered).toBeGreaterThanOrEqual(550);
      expect((await request(s.managementUrl).get('/signal/health')).text).toBe('OK');
    });

    it('a soft-down answer (503) drains for the grace, then goes down', async () => {
      const s = await run({
        STATUS_INITIAL: 'ready',
        UPSTREAM_HEALTH_URLS: `${upstream.url}/health`,
        HEALTH_DAMPENING_INTERVAL: '0.2',
        DRAIN_GRACE_INTERVAL: '0.8',
      });
      upstream.answer('/health', { status: 503 });
      const failed = performance.now();
      await until(s, 'up drain 0%\n');
      const r = await report(s);
      expect(r).toMatchObject({ healthy: true, damped: true, status: 'drain', weight: '0%' });
      expect(r.checks[0]).toMatchObject({ ok: false, statusCode: 503, softDown: true });
      expect((await request(s.managementUrl).get('/agent/health')).status).toBe(200);
      await until(s, 'down ready 100%\n');
      expect(performance.now() - failed).toBeGreaterThanOrEqual(700);
    });

    it('a timeout is soft-down where the section says so, and named in the report', async () => {
      upstream.answer('/slow', { hang: true });
      const yaml = `agent:\n  upstreams:\n    - { name: slow, url: "${upstream.url}/slow", timeout: 200ms, softDown: { onTimeout: true } }\n    - { name: fine, url: "${upstream.url}/health" }\n`;
      const file = `${require('node:os').tmpdir()}/agent-${process.pid}-${Date.now()}.yaml`;
      writeFileSync(file, yaml);
      try {
        // The first round fails while nothing was healthy yet: no grace without a healthy round.
        const s = await run({ STATUS_INITIAL: 'ready', SIDECAR_CONFIG: file, DRAIN_GRACE_INTERVAL: '30' });
        const r = await report(s);
        expect(r.checks).toEqual([
          expect.objectContaining({
            name: 'slow',
            ok: false,
            reachable: false,
            timedOut: true,
            softDown: true,
            error: 'no answer within 0.2 s',
          }),
          expect.objectContaining({ name: 'fine', ok: true }),
        ]);
        expect(r.checks[0].durationMs).toBeGreaterThanOrEqual(180);
        expect(r.agentMessage).toBe('down ready 100%');
      } finally {
        rmSync(file, { force: true });
      }
    });

    it('polls the checks of a round concurrently, and rounds never overlap', async () => {
      const delayed = new FakeUpstream();
      await delayed.listen();
      try {
        // Three checks that each answer after 300 ms (they time out at 300 ms and count as failed).
        for (const p of ['/a', '/b', '/c']) delayed.answer(p, { hang: true });
        const s = await run({
          STATUS_INITIAL: 'ready',
          UPSTREAM_HEALTH_URLS: ['/a', '/b', '/c'].map((p) => delayed.url + p).join(','),
          UPSTREAM_TIMEOUT_SECONDS: '0.3',
          POLLING_INTERVAL: '0.05',
        });
        const agent = s.app.get(AgentService);
        const t0 = performance.now();
        await agent.runRound();
        expect(performance.now() - t0).toBeLessThan(750);
        const before = delayed.hits.get('/a') ?? 0;
        await new Promise((r) => setTimeout(r, 1000));
        // 1 s of 50 ms ticks, but each round lasts 300 ms: at most 4 more requests per check.
        expect((delayed.hits.get('/a') ?? 0) - before).toBeLessThanOrEqual(4);
      } finally {
        await delayed.close();
      }
    });
  });

  describe('bad upstream answers are reported, never a crash', () => {
    it('HTML or a huge body on a health URL: the status decides, the body is not read', async () => {
      upstream.answer('/html', { status: 200, body: '<!doctype html><html><body>It works</body></html>', contentType: 'text/html' });
      upstream.answer('/huge', { status: 200, hugeBytes: 200 * 1024 * 1024 });
      const s = await run({ STATUS_INITIAL: 'ready', UPSTREAM_HEALTH_URLS: `${upstream.url}/html,${upstream.url}/huge` });
      const rss = process.memoryUsage().rss;
      for (let i = 0; i < 5; i++) await s.app.get(AgentService).runRound();
      const r = await report(s);
      expect(r.checks.map((c: { ok: boolean; statusCode: number }) => [c.ok, c.statusCode])).toEqual([
        [true, 200],
        [true, 200],
      ]);
      expect(r.checks[1].durationMs).toBeLessThan(1000);
      expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024);
      expect(await agentLine(s.port)).toBe('up ready 100%\n');
    });

    it.each([
      [
        'HTML',
        { status: 200, body: '<html>stats</html>', contentType: 'text/html' },
        /^answer is not JSON \(starts "<html>stats<\/html>"\)$/,
      ],
      ['a missing field', { status: 200, body: '{"conferences": 3}' }, /^no field participants in the answer$/],
      ['a field that is not a number', { status: 200, body: '{"participants": "12"}' }, /^participants is string, not a number$/],
      ['an error status', { status: 500, body: '{"participants": 12}' }, /^answered 500$/],
      ['a body over 64 KiB', { status: 200, hugeBytes: 1024 * 1024 }, /^answer larger than 64 KiB$/],
    ])('a load source answering %s: weight 1%%, the reason in the report', async (_what, answer, error) => {
      upstream.answer('/stats', answer);
      const file = `${require('node:os').tmpdir()}/agent-load-${process.pid}-${Date.now()}.yaml`;
      writeFileSync(file, `agent:\n  loadSource: { url: "${upstream.url}/stats", field: participants, max: 100 }\n`);
      try {
        const s = await run({ STATUS_INITIAL: 'ready', SIDECAR_CONFIG: file });
        expect(await agentLine(s.port)).toBe('up ready 1%\n');
        const r = await report(s);
        expect(r.load).toMatchObject({ url: `${upstream.url}/stats`, field: 'participants', max: 100, value: null });
        expect(r.load.error).toMatch(error);
        expect(await metric(s, 'sidecar_agent_load_errors_total')).toBeGreaterThanOrEqual(1);
        upstream.json('/stats', { participants: 40 });
        await until(s, 'up ready 60%\n');
        expect(await metric(s, 'sidecar_agent_load')).toBe(40);
      } finally {
        rmSync(file, { force: true });
      }
    });
  });

  describe('the Jitsi preset', () => {
    const jicofo = new FakeUpstream();
    const prosody = new FakeUpstream();
    beforeAll(async () => {
      await jicofo.listen();
      await prosody.listen();
    });
    afterAll(async () => {
      await jicofo.close();
      await prosody.close();
    });
    beforeEach(() => {
      jicofo.answer('/about/health', { status: 200 });
      jicofo.json('/stats', { participants: 25, conferences: 3 });
      prosody.answer('/http-bind', {
        status: 200,
        body: '<html><body>It works! Now point your BOSH client to this URL</body></html>',
        contentType: 'text/html',
      });
    });

    const jitsiEnv = () => ({
      JICOFO_ORIG: jicofo.url,
      PROSODY_ORIG: prosody.url,
      PARTICIPANT_MAX: '100',
      WEIGHT_PARTICIPANTS: 'true',
      STATUS_INITIAL: 'ready',
      UPSTREAM_TIMEOUT_SECONDS: '0.2',
      HEALTH_DAMPENING_INTERVAL: '0.1',
      DRAIN_GRACE_INTERVAL: '2',
    });

    it('weighs by participants against PARTICIPANT_MAX, and drains above it', async () => {
      const s = await run(jitsiEnv());
      expect(await agentLine(s.port)).toBe('up ready 75%\n');
      expect((await report(s)).checks.map((c: { name: string }) => c.name)).toEqual(['jicofo', 'jicofo-stats', 'prosody']);
      jicofo.json('/stats', { participants: 99 });
      await until(s, 'up ready 1%\n');
      jicofo.json('/stats', { participants: 101 });
      await until(s, 'up drain 0%\n');
      expect((await report(s)).reasons).toContain('load 101 is above the maximum 100');
    });

    it('jicofo 503 drains within the grace; prosody down does not', async () => {
      const s = await run(jitsiEnv());
      jicofo.answer('/about/health', { status: 503 });
      await until(s, 'up drain 0%\n');
      prosody.answer('/http-bind', { status: 502 });
      await until(s, 'down ready 75%\n');
    });

    it('a prosody timeout drains within the grace', async () => {
      const s = await run(jitsiEnv());
      prosody.answer('/http-bind', { hang: true });
      await until(s, 'up drain 0%\n');
      expect((await report(s)).checks[2]).toMatchObject({ name: 'prosody', timedOut: true, softDown: true });
    });

    it("/signal/report answers in signal-sidecar's shape, with jicofo's answer and /stats read once per round", async () => {
      const s = await run(jitsiEnv());
      const signal = () => request(s.managementUrl).get('/signal/report');
      const healthy = await signal();
      expect(healthy.status).toBe(200);
      expect(healthy.headers['content-type']).toMatch(/^application\/json/);
      expect(healthy.body).toStrictEqual({
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        healthy: true,
        status: 'ready',
        weight: '75%',
        agentmessage: 'up ready 75%',
        services: {
          jicofoHealthy: true,
          jicofoReachable: true,
          jicofoStatusCode: 200,
          jicofoStatusContents: '',
          jicofoStatsReachable: true,
          jicofoStatusStatusCode: 200,
          jicofoStatsStatusCode: 200,
          prosodyHealthy: true,
          prosodyReachable: true,
          prosodyStatusCode: 200,
        },
        statuses: { statusFileFound: true, statusFileContents: 'ready' },
        stats: { jicofoParticipants: 25, jicofoConferences: 3, prosodyParticipants: null, prosodySumSquaredParticipants: null },
      });
      expect(Math.abs(Date.parse(healthy.body.time) - Date.now())).toBeLessThan(5000);
      // Our own shape stays on /agent/report.
      expect((await report(s)).agentMessage).toBe('up ready 75%');

      // /stats is fetched by the jicofo-stats check and the load read, as before: conferences cost no request.
      // (Between a finished round and the next line no timer runs, so the count is one round's.)
      const agent = s.app.get(AgentService);
      await agent.runRound();
      jicofo.hits.clear();
      await agent.runRound();
      expect([jicofo.hits.get('/about/health'), jicofo.hits.get('/stats')]).toEqual([1, 2]);

      // jicofo under load: 503 with an explanation longer than what is kept.
      const why = `  {"status":"unhealthy","reason":"${'conference focus overloaded; '.repeat(20)}"}\n`;
      jicofo.answer('/about/health', { status: 503, body: why, contentType: 'application/json' });
      jicofo.json('/stats', { participants: 60, conferences: 7 });
      await until(s, 'up drain 0%\n');
      const draining = await signal();
      expect(draining.status).toBe(200);
      expect(draining.body).toMatchObject({ healthy: true, status: 'drain', weight: '0%', agentmessage: 'up drain 0%' });
      expect(draining.body.services).toMatchObject({
        jicofoHealthy: false,
        jicofoReachable: true,
        jicofoStatusCode: 503,
        prosodyHealthy: true,
      });
      expect(draining.body.services.jicofoStatusContents).toBe(why.slice(0, 256).trim());
      expect(draining.body.services.jicofoStatusContents).toMatch(/^\{"status":"unhealthy","reason":"conference focus overloaded; /);
      expect(draining.body.stats).toStrictEqual({
        jicofoParticipants: 60,
        jicofoConferences: 7,
        prosodyParticipants: null,
        prosodySumSquaredParticipants: null,
      });

      prosody.answer('/http-bind', { status: 502 });
      await until(s, 'down ready 40%\n');
      const down = await signal();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ healthy: false, status: 'ready', weight: '40%', agentmessage: 'down ready 40%' });
      expect(down.body.services).toMatchObject({ prosodyHealthy: false, prosodyReachable: true, prosodyStatusCode: 502 });
    });

    it('jicofo stats unreachable is unhealthy, as signal-sidecar has it', async () => {
      const s = await run(jitsiEnv());
      jicofo.answer('/stats', { status: 500 });
      await until(s, 'down ready 1%\n');
    });
  });

  describe('with the smee health check on', () => {
    const channel = new LoopbackChannel();
    let channelUrl: string;
    beforeAll(async () => (channelUrl = await channel.listen()));
    afterAll(() => channel.close());

    it('its round trip is one more (hard) check', async () => {
      const relayPort = await freePort();
      channel.target = `http://127.0.0.1:${relayPort}`;
      channel.frozen = true;
      const s = await run({
        STATUS_INITIAL: 'ready',
        SMEE_CHANNEL_URL: channelUrl,
        RELAY_PORT: String(relayPort),
        HEALTH_CHECK_INTERVAL_SECONDS: '0.3',
        HEALTH_CHECK_TIMEOUT_SECONDS: '0.2',
        DRAIN_GRACE_INTERVAL: '30',
      });
      // Before its first result the round trip is pending: down, and no dampening stamped.
      await eventually(
        async () => ((await report(s)).checks[0].error !== 'no result yet' ? true : undefined),
        3000,
        'a health check result',
      );
      expect((await report(s)).checks).toEqual([
        expect.objectContaining({
          name: 'health-check',
          url: null,
          ok: false,
          error: 'Health check timed out waiting for event round-trip',
        }),
      ]);
      expect(await agentLine(s.port)).toBe('down ready 100%\n');
      expect(await metric(s, 'sidecar_agent_check_up{check="health-check"}')).toBe(0);
      channel.frozen = false;
      await until(s, 'up ready 100%\n');
      expect(await metric(s, 'sidecar_agent_check_up{check="health-check"}')).toBe(1);
    });
  });

  it('exposes every series from start-up, then the state as it changes', async () => {
    upstream.answer('/down', { status: 503 });
    const s = await run({
      STATUS_INITIAL: 'ready',
      UPSTREAM_HEALTH_URLS: `${upstream.url}/health,${upstream.url}/down`,
      DRAIN_GRACE_INTERVAL: '30',
    });
    const name = (p: string) => `127.0.0.1:${new URL(upstream.url).port}${p}`;
    await s.app.get(AgentService).runRound();
    expect(await agentLine(s.port)).toBe('down ready 100%\n'); // no grace: never healthy since start
    expect(await metric(s, 'sidecar_agent_healthy')).toBe(0);
    expect(await metric(s, 'sidecar_agent_status{status="ready"}')).toBe(1);
    expect(await metric(s, 'sidecar_agent_status{status="drain"}')).toBe(0);
    expect(await metric(s, 'sidecar_agent_weight_percent')).toBe(100);
    expect(await metric(s, `sidecar_agent_check_up{check="${name('/health')}"}`)).toBe(1);
    expect(await metric(s, `sidecar_agent_check_up{check="${name('/down')}"}`)).toBe(0);
    expect(await metric(s, `sidecar_agent_checks_total{check="${name('/down')}",result="soft_down"}`)).toBeGreaterThanOrEqual(1);
    expect(await metric(s, `sidecar_agent_checks_total{check="${name('/down')}",result="ok"}`)).toBe(0);
    upstream.answer('/down', { status: 200 });
    const drainedAt = Date.now();
    writeStatus(s.statusPath, 'drain');
    await until(s, 'up drain 0%\n');
    expect(await metric(s, 'sidecar_agent_healthy')).toBe(1);
    expect(await metric(s, 'sidecar_agent_status{status="drain"}')).toBe(1);
    expect(await metric(s, 'sidecar_agent_weight_percent')).toBe(0);
    const status = (await request(s.managementUrl).get('/status')).body;
    expect(status.features.agent).toBe(true);
    expect(status.agent).toEqual({
      healthy: true,
      damped: false,
      status: 'drain',
      weight: '0%',
      agentMessage: 'up drain 0%',
      reasons: ['status file says drain'],
      since: expect.any(String),
    });
    // Since when it drains: the round that saw the file, not start-up.
    expect(Date.parse(status.agent.since)).toBeGreaterThanOrEqual(drainedAt);
  });

  it('shuts down promptly with an agent connection held open, and stops listening', async () => {
    const s = await run({ STATUS_INITIAL: 'ready' }, (c) => (c.agent!.connectionTimeoutMs = 60_000));
    const held = askAgent(s.port, { keepOpen: true });
    await eventually(async () => (await report(s)) && true, 1000);
    const t0 = performance.now();
    await s.close();
    sidecar = undefined;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect((await held).text).toBe('up ready 100%\n');
    await expect(askAgent(s.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

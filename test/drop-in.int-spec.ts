import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { agentLine } from './support/agent-client';
import { FakeProsody } from './support/fake-prosody';
import { FakeUpstream } from './support/fake-upstream';
import { listeningPorts } from './support/listening-ports';
import { killLeftover, spawnSidecar, SidecarProcess } from './support/process';
import { LoopbackChannel } from './support/loopback-channel';
import { PrometheusServer } from './support/prometheus';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort } from './support/sidecar';

/**
 * One per sidecar this one replaces: the built sidecar started with nothing but that
 * sidecar's own documented configuration (its README's settings, flags or file, with its
 * example values; ports and peers' addresses on loopback), checked at every endpoint it
 * documents, in the documented shapes, against fake peers, and for the ports it opens.
 */
describe('drop-in for the sidecars it replaces', () => {
  let running: SidecarProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'drop-in-'));

  afterEach(async () => {
    await killLeftover(running);
    running = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function stopsCleanly(): Promise<void> {
    running!.proc.kill('SIGTERM');
    expect(await running!.exited).toBe(0);
  }

  describe('jitsi signal-sidecar', () => {
    const CONFERENCE_HOST = 'conference.meet.example.com';
    const jicofo = new FakeUpstream();
    const prosody = new FakeProsody(CONFERENCE_HOST);

    beforeAll(async () => {
      jicofo.answer('/about/health', { status: 200, body: '' }).json('/stats', { participants: 7, conferences: 2, largest_conference: 5 });
      prosody.rooms = [
        { room_name: `daily@${CONFERENCE_HOST}`, participants: 5, created_time: 1764921600 },
        { room_name: `standup@${CONFERENCE_HOST}`, participants: 2, created_time: 1764925200 },
      ];
      await Promise.all([jicofo.listen(), prosody.listen()]);
    });
    afterAll(() => Promise.all([jicofo.close(), prosody.close()]));

    /** Every setting of its README's list, under its names (PARTIPANT_MAX spelt as that list spells it). */
    async function signalEnv(extra: Record<string, string> = {}) {
      const statusPath = join(dir, 'shard-status');
      writeFileSync(statusPath, 'ready\n');
      const [http, tcp] = [await freePort(), await freePort()];
      return {
        http,
        tcp,
        env: {
          HTTP_PORT: String(http),
          TCP_PORT: String(tcp),
          JICOFO_ORIG: jicofo.url,
          PROSODY_ORIG: prosody.url,
          STATUS_PATH: statusPath,
          POLLING_INTERVAL: '1',
          PARTIPANT_MAX: '10',
          WEIGHT_PARTICIPANTS: 'true',
          CENSUS_POLL: 'true',
          CENSUS_HOST: CONFERENCE_HOST,
          HEALTH_DAMPENING_INTERVAL: '30',
          DRAIN_GRACE_INTERVAL: '120',
          METRICS: 'true',
          LOG_LEVEL: 'info',
          ...extra,
        },
      };
    }

    it('serves /health, /signal/health, /signal/report, /signal/census and /metrics on HTTP_PORT, the agent on TCP_PORT, and opens nothing else', async () => {
      const { http, tcp, env } = await signalEnv();
      running = spawnSidecar(env);
      const ready = await running.ready;
      expect(ready).toMatchObject({ preset: 'signal-sidecar', managementPort: http, agentPort: tcp, relayPort: null });
      expect(listeningPorts(running.proc.pid!)).toEqual([http, tcp].sort((a, b) => a - b));
      const api = request(`http://127.0.0.1:${http}`);

      expect((await api.get('/health')).status).toBe(200);
      expect((await api.get('/signal/health')).status).toBe(200);

      const report = await eventually(
        async () => {
          const r = await api.get('/signal/report');
          return r.body?.stats?.prosodyParticipants !== null ? r : undefined;
        },
        10_000,
        'a report with the census',
      );
      expect(report.status).toBe(200);
      expect(report.body).toEqual({
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        healthy: true,
        status: 'ready',
        // 7 of 10 participants: 30% free, a multiple of 5.
        weight: '30%',
        agentmessage: 'up ready 30%',
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
        stats: { jicofoParticipants: 7, jicofoConferences: 2, prosodyParticipants: 7, prosodySumSquaredParticipants: 29 },
      });

      const census = await api.get('/signal/census');
      expect(census.status).toBe(200);
      expect(census.body).toEqual({ room_census: prosody.rooms });
      expect(new Set(prosody.censusHosts)).toEqual(new Set([CONFERENCE_HOST]));

      const metrics = await api.get('/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('sidecar_agent_');

      expect(await agentLine(tcp)).toBe('up ready 30%\n');
      await stopsCleanly();
    });

    it('METRICS=false: no /metrics; CENSUS_POLL=false: /signal/census is 404 and the census fields are null', async () => {
      const { http, env } = await signalEnv({ METRICS: 'false', CENSUS_POLL: 'false' });
      running = spawnSidecar(env);
      await running.ready;
      const api = request(`http://127.0.0.1:${http}`);
      expect((await api.get('/metrics')).status).toBe(404);
      const census = await api.get('/signal/census');
      expect(census.status).toBe(404);
      expect(census.body).toMatchObject({ error: 'census_off' });
      const report = await eventually(
        async () => {
          const r = await api.get('/signal/report');
          return r.body?.stats?.jicofoParticipants === 7 ? r : undefined;
        },
        10_000,
        'a report with jicofo stats',
      );
      expect(report.body.stats).toEqual({
        jicofoParticipants: 7,
        jicofoConferences: 2,
        prosodyParticipants: null,
        prosodySumSquaredParticipants: null,
      });
      await stopsCleanly();
    });
  });

  describe('signal-sidecar with a failing census', () => {
    it('a census that prosody does not serve on CENSUS_HOST: /signal/census 503 with the reason, census fields null, the node still healthy', async () => {
      const jicofo = new FakeUpstream().answer('/about/health', { status: 200 }).json('/stats', { participants: 1, conferences: 1 });
      const prosody = new FakeProsody('conference.meet.example.com');
      await Promise.all([jicofo.listen(), prosody.listen()]);
      try {
        const http = await freePort();
        running = spawnSidecar({
          HTTP_PORT: String(http),
          TCP_PORT: String(await freePort()),
          JICOFO_ORIG: jicofo.url,
          PROSODY_ORIG: prosody.url,
          STATUS_PATH: join(dir, 'no-such-status'),
          POLLING_INTERVAL: '1',
          CENSUS_POLL: 'true',
          CENSUS_HOST: 'wrong.example.com',
        });
        await running.ready;
        const api = request(`http://127.0.0.1:${http}`);
        const census = await eventually(
          async () => {
            const r = await api.get('/signal/census');
            return r.status === 503 && /answered 404/.test(r.body.message ?? '') ? r : undefined;
          },
          10_000,
          'the failed census reported',
        );
        expect(census.body).toEqual({ error: 'census_unavailable', message: 'the last census read failed: answered 404' });
        const report = await api.get('/signal/report');
        expect(report.body.stats).toMatchObject({ jicofoParticipants: 1, prosodyParticipants: null, prosodySumSquaredParticipants: null });
        expect(report.body.services).toMatchObject({ jicofoHealthy: true, prosodyHealthy: true });
        expect(running.lines.filter((l) => l.includes('census read failed'))).toHaveLength(1);
        await stopsCleanly();
      } finally {
        await Promise.all([jicofo.close(), prosody.close()]);
      }
    });
  });

  describe('spawner-sidecar', () => {
    let monitored: Server;
    let monitoredPort: number;
    const clients: Socket[] = [];

    beforeAll(async () => {
      monitored = createServer((s) => s.on('error', () => undefined));
      await new Promise<void>((r) => monitored.listen(0, '127.0.0.1', r));
      monitoredPort = (monitored.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const c of clients) c.destroy();
      await new Promise((r) => monitored.close(r));
    });

    it('takes its flags, serves the connection state at GET / on --serve-port, and opens no other port (not the monitored one)', async () => {
      const serve = await freePort();
      running = spawnSidecar(
        {},
        { args: ['--monitor-port', String(monitoredPort), '--refresh-rate-seconds', '1', '--serve-port', String(serve)] },
      );
      const ready = await running.ready;
      expect(ready).toMatchObject({ preset: 'spawner-sidecar', managementPort: serve, relayPort: null, monitorPorts: [monitoredPort] });
      expect(listeningPorts(running.proc.pid!)).toEqual([serve]);
      const api = request(`http://127.0.0.1:${serve}`);

      const idle = await api.get('/');
      expect(idle.status).toBe(200);
      expect(idle.headers['content-type']).toMatch(/^application\/json/);
      expect(Object.keys(idle.body)).toEqual(['active_connections', 'waiting_connections', 'seconds_since_active', 'listening']);
      expect(idle.body).toMatchObject({ active_connections: 0, waiting_connections: 0, listening: true });
      expect(typeof idle.body.seconds_since_active).toBe('number');

      const client = createConnection(monitoredPort, '127.0.0.1');
      clients.push(client);
      await new Promise((r) => client.once('connect', r));
      const busy = await eventually(
        async () => {
          const r = await api.get('/');
          return r.body.active_connections >= 1 ? r : undefined;
        },
        5000,
        'the connection counted',
      );
      expect(busy.body).toMatchObject({ active_connections: 1, listening: true, seconds_since_active: 0 });
      await stopsCleanly();
    });

    it('GET / is 503 with null counts when the socket tables cannot be read, never an idle-looking 0', async () => {
      const serve = await freePort();
      running = spawnSidecar(
        { PROC_NET_PATH: join(dir, 'no-proc-net') },
        { args: ['--monitor-port', String(monitoredPort), '--serve-port', String(serve)] },
      );
      await running.ready;
      const res = await request(`http://127.0.0.1:${serve}`).get('/');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ active_connections: null, waiting_connections: null, seconds_since_active: null, listening: null });
      await stopsCleanly();
    });

    it('--help prints the usage and exits 0; an unknown flag exits 78 naming it', async () => {
      running = spawnSidecar({}, { args: ['--help'] });
      expect(await running.exited).toBe(0);
      expect(running.lines.join('\n')).toContain('--monitor-port <MONITOR_PORT>');
      running = spawnSidecar({}, { args: ['--monitor-port', '8080', '--verbose'] });
      expect(await running.exited).toBe(78);
      expect(running.stderr()).toContain("Unknown option '--verbose'");
    });
  });

  describe('metrics pusher', () => {
    const prometheus = new PrometheusServer();
    beforeAll(() => prometheus.start(), 30_000);
    afterAll(() => prometheus.stop());

    it('pushes its heartbeat, uptime and memory series under its names to Prometheus, with TIMEOUT and NAMESPACE read, and serves /health and /ready', async () => {
      // The pusher's README names no port for /health and /ready; they are on the management port.
      const management = await freePort();
      running = spawnSidecar({
        PROMETHEUS_REMOTE_WRITE_URL: prometheus.writeUrl,
        PUSH_INTERVAL: '1s',
        TIMEOUT: '30s',
        LOG_LEVEL: 'info',
        NAMESPACE: 'knative-lambda',
        MANAGEMENT_PORT: String(management),
      });
      const ready = await running.ready;
      expect(ready).toMatchObject({ preset: 'metrics-pusher', remoteWrite: true, relayPort: null, managementPort: management });
      expect(listeningPorts(running.proc.pid!)).toEqual([management]);
      const api = request(`http://127.0.0.1:${management}`);
      expect((await api.get('/health')).status).toBe(200);
      expect((await api.get('/ready')).status).toBe(200);

      const startedAt = Date.now() / 1000;
      const heartbeat = await eventually(
        async () => {
          const v = await prometheus.query('knative_lambda_metric_pusher_heartbeat{namespace="knative-lambda"}');
          return v.length > 0 && Number(v[0].value[1]) >= startedAt - 2 ? v : undefined;
        },
        20_000,
        'the heartbeat in Prometheus',
      );
      expect(Math.abs(Number(heartbeat[0].value[1]) - Date.now() / 1000)).toBeLessThan(30);
      for (const name of ['uptime_seconds', 'system_memory_alloc_bytes', 'system_memory_sys_bytes']) {
        const v = await eventually(
          async () => {
            const r = await prometheus.query(`knative_lambda_metric_pusher_${name}{namespace="knative-lambda"}`);
            return r.length > 0 ? r : undefined;
          },
          10_000,
          name,
        );
        expect(Number(v[0].value[1])).toBeGreaterThan(0);
      }
      await stopsCleanly();
    }, 60_000);
  });

  describe('sidecar_http_dispatcher', () => {
    const dest = new RecordingServer();
    const fallback = new RecordingServer();
    beforeAll(() => Promise.all([dest.listen(), fallback.listen()]));
    afterAll(() => Promise.all([dest.close(), fallback.close()]));
    afterEach(() => {
      dest.requests.length = 0;
      fallback.requests.length = 0;
    });

    /** Its README's config schema example, with the destinations on loopback. */
    const configYaml = () => `rewrites: # set of rewrite rules
  dev: # value of key propery. i.e -H 'environment: dev'
    patch: # action type
      - key: Host # header key
        val: example.com # header value
      - key: dispatched
        val: true
    destination: ${dest.url} # (optional) destination url
key: environment # key used to dispatch request
destination: ${fallback.url} # default destination url
`;

    async function checkDispatch(): Promise<void> {
      const api = request('http://127.0.0.1:5000');
      expect((await api.get('/').set('environment', 'dev')).status).toBe(200);
      expect(dest.requests).toHaveLength(1);
      expect(dest.requests[0].headers).toMatchObject({ host: 'example.com', dispatched: 'true', environment: 'dev' });
      expect((await api.get('/other')).status).toBe(200);
      expect(fallback.requests.map((r) => r.url)).toEqual(['/other']);
    }

    it('with SIDECAR_CONFIG unset, reads config.yaml from its working directory and dispatches on port 5000, its only port', async () => {
      const cwd = mkdtempSync(join(dir, 'dispatcher-'));
      writeFileSync(join(cwd, 'config.yaml'), configYaml());
      running = spawnSidecar({}, { cwd });
      const ready = await running.ready;
      expect(ready).toMatchObject({ preset: 'http-dispatcher', relayPort: 5000, managementPort: null, dispatch: true });
      expect(listeningPorts(running.proc.pid!)).toEqual([5000]);
      await checkDispatch();
      await stopsCleanly();
    });

    it('with SIDECAR_CONFIG naming the file, the same', async () => {
      const file = join(dir, 'dispatcher.yaml');
      writeFileSync(file, configYaml());
      running = spawnSidecar({ SIDECAR_CONFIG: file });
      const ready = await running.ready;
      expect(ready).toMatchObject({ preset: 'http-dispatcher', relayPort: 5000, managementPort: null });
      expect(listeningPorts(running.proc.pid!)).toEqual([5000]);
      await checkDispatch();
      await stopsCleanly();
    });
  });

  describe('names of two of them at once', () => {
    it('exits 78 naming the settings and the sidecars they belong to, before opening anything', async () => {
      running = spawnSidecar({ HTTP_PORT: '6000', TIMEOUT: '30s', PROMETHEUS_REMOTE_WRITE_URL: 'http://127.0.0.1:9/api/v1/write' });
      expect(await running.exited).toBe(78);
      expect(running.stderr()).toContain('settings of two sidecars at once: signal-sidecar (HTTP_PORT) and metrics-pusher (TIMEOUT)');
      expect(running.lines).toEqual([]);
    });
  });

  describe('smee-sidecar', () => {
    it("its settings are the sidecar's own: relay and management ports, /metrics, the status file and probe scripts", async () => {
      const downstream = new RecordingServer();
      await downstream.listen();
      const channel = new LoopbackChannel();
      const channelUrl = await channel.listen();
      const shared = mkdtempSync(join(dir, 'shared-'));
      const [relay, management] = [await freePort(), await freePort()];
      channel.target = `http://127.0.0.1:${relay}`;
      try {
        // Its README's settings; the two ports (8080 and 9100 there) moved off the shared machine's fixed ports.
        running = spawnSidecar({
          DOWNSTREAM_SERVICE_URL: downstream.url,
          SMEE_CHANNEL_URL: channelUrl,
          HEALTH_CHECK_INTERVAL_SECONDS: '30',
          HEALTH_CHECK_TIMEOUT_SECONDS: '20',
          SHARED_VOLUME_PATH: shared,
          INSECURE_SKIP_VERIFY: 'false',
          ENABLE_PPROF: 'false',
          RELAY_PORT: String(relay),
          MANAGEMENT_PORT: String(management),
        });
        const ready = await running.ready;
        expect(ready).toMatchObject({ preset: null, relayPort: relay, managementPort: management, healthCheck: true });
        expect(listeningPorts(running.proc.pid!)).toEqual([relay, management].sort((a, b) => a - b));
        const status = await eventually(
          () => {
            try {
              const text = readFileSync(join(shared, 'health-status.txt'), 'utf8');
              return text.startsWith('status=success\n') ? text : undefined;
            } catch {
              return undefined;
            }
          },
          10_000,
          'a successful health check in the status file',
        );
        expect(status.split('\n').slice(0, 2)).toEqual(['status=success', 'message=Health check completed successfully']);
        expect((await request(`http://127.0.0.1:${relay}`).post('/hook').send({ a: 1 })).status).toBe(200);
        expect(downstream.requests.map((r) => r.url)).toEqual(['/hook']);
        const metrics = await request(`http://127.0.0.1:${management}`).get('/metrics');
        expect(metrics.text).toMatch(/^smee_events_relayed_total 1$/m);
        expect(metrics.text).toMatch(/^health_check 1$/m);
        await stopsCleanly();
      } finally {
        await downstream.close();
        await channel.close();
      }
    });
  });
});

import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { startSidecar, Sidecar } from '../src/sidecar';
import { FakeUpstream } from './support/fake-upstream';
import { HAPROXY, HaproxyProcess, ServerStat } from './support/haproxy';
import { testConfig } from './support/sidecar';
import { waitFor } from './support/wait-for';

/**
 * The agent as a real HAProxy sees it: a backend server with `agent-check` against our
 * AGENT_PORT, watched through HAProxy's admin stats socket. The sidecar polls one upstream
 * (soft-down on 503) and reads its load from a JSON source this test controls.
 */
describe('HAProxy agent-check against the agent (real haproxy)', () => {
  const DAMPENING_S = 1;
  const GRACE_S = 1.5;
  const app = new FakeUpstream();
  const haproxy = new HaproxyProcess();
  const dir = mkdtempSync(join(tmpdir(), 'agent-haproxy-'));
  const statusPath = join(dir, 'shard-status');
  let sidecar: Sidecar;

  const setStatus = (text: string) => {
    writeFileSync(`${statusPath}.tmp`, text);
    renameSync(`${statusPath}.tmp`, statusPath);
  };
  const setLoad = (active: number) => app.json('/stats', { sessions: { active, idle: 3 } });
  const server = () => haproxy.server('be_app', 'app');
  /** Waits until HAProxy's view of the server passes `test`; returns it and when it was first seen. */
  const seen = async (what: string, test: (s: ServerStat) => boolean, timeoutMs = 5000) => {
    let last: ServerStat | undefined;
    const stat = await waitFor(
      what,
      async () => {
        last = await server();
        return test(last) ? last : undefined;
      },
      {
        timeoutMs,
        everyMs: 25,
        describeLast: () => `status=${last?.status} weight=${last?.weight} agent=${last?.last_agt}\n${haproxy.log}`,
      },
    );
    return { stat, at: performance.now() };
  };

  beforeAll(async () => {
    if (!existsSync(HAPROXY)) throw new Error(`${HAPROXY} is missing: scripts/install-test-peers.sh installs Debian's haproxy`);
    await app.listen();
    app.answer('/health', { status: 200, body: 'ok' });
    setLoad(20);
    setStatus('ready');
    const file = join(dir, 'sidecar.yaml');
    writeFileSync(
      file,
      [
        'agent:',
        '  upstreams:',
        `    - { name: app, url: "${app.url}/health", timeout: 300ms, softDown: { statuses: [503] } }`,
        `  loadSource: { url: "${app.url}/stats", field: sessions.active, max: 100 }`,
        '',
      ].join('\n'),
    );
    register.clear();
    const config = testConfig({
      SIDECAR_CONFIG: file,
      AGENT_PORT: '1',
      STATUS_PATH: statusPath,
      POLLING_INTERVAL: '0.1',
      HEALTH_DAMPENING_INTERVAL: String(DAMPENING_S),
      DRAIN_GRACE_INTERVAL: String(GRACE_S),
    });
    config.agent!.port = 0;
    sidecar = await startSidecar(config);
    // The server is the app itself (TCP check); its agent is the sidecar, as in a pod. HAProxy
    // sends the agent-send text on each check: the agent reads and ignores it.
    await haproxy.start(
      [
        'backend be_app',
        `  server app 127.0.0.1:${new URL(app.url).port} check inter 200ms weight 100 agent-check agent-addr 127.0.0.1 agent-port ${sidecar.agentPort} agent-inter 200ms agent-send "be_app/app\\n"`,
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await haproxy.stop();
    await sidecar?.close();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is UP with the weight the agent says (load 20 of 100: 80% of 100)', async () => {
    // HAProxy starts every server at its configured weight 100: 80 can only come from the agent.
    const { stat } = await seen('UP at weight 80', (s) => s.status === 'UP' && s.weight === '80');
    expect(stat.last_agt).toBe('via agent : up');
  });

  it('follows the load with its weight', async () => {
    setLoad(50);
    await seen('weight 50', (s) => s.status === 'UP' && s.weight === '50');
    setLoad(77);
    await seen('weight 25 (23% free, in steps of 5)', (s) => s.weight === '25');
    setLoad(100);
    await seen('weight 1 at the maximum', (s) => s.status === 'UP' && s.weight === '1');
    setLoad(10);
    await seen('weight 90', (s) => s.weight === '90');
  });

  it('goes to DRAIN when the status file says drain, to MAINT on maint, and back when ready', async () => {
    setStatus('drain\n');
    await seen('DRAIN', (s) => s.status.startsWith('DRAIN') && s.weight === '0');
    setStatus('maint');
    await seen('MAINT', (s) => s.status.startsWith('MAINT'));
    setStatus('ready');
    await seen('UP again', (s) => s.status === 'UP' && s.weight === '90');
  });

  it('drains while an upstream answers 503 within the grace, goes DOWN past it, and UP again only after the dampening', async () => {
    app.answer('/health', { status: 503 });
    const failedAt = performance.now();
    await seen('DRAIN during the grace', (s) => s.status.startsWith('DRAIN'));
    const down = await seen('DOWN past the grace', (s) => s.status.startsWith('DOWN'));
    // The grace counts from the first round that saw the 503 (up to one poll later).
    expect((down.at - failedAt) / 1000).toBeGreaterThanOrEqual(GRACE_S - 0.05);
    expect((down.at - failedAt) / 1000).toBeLessThan(GRACE_S + 1.5);

    app.answer('/health', { status: 200, body: 'ok' });
    const recoveredAt = performance.now();
    // Sampled while the dampening holds: HAProxy keeps it DOWN.
    const during: string[] = [];
    while (performance.now() - recoveredAt < (DAMPENING_S - 0.3) * 1000) {
      during.push((await server()).status);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(during.every((s) => s.startsWith('DOWN'))).toBe(true);
    const up = await seen('UP after the dampening', (s) => s.status === 'UP');
    expect((up.at - recoveredAt) / 1000).toBeGreaterThanOrEqual(DAMPENING_S - 0.05);
    expect(up.stat.weight).toBe('90');
  });

  it('goes DOWN at once on a hard failure (no grace), and the agent keeps answering', async () => {
    app.answer('/health', { status: 500, body: '<html><body>boom</body></html>', contentType: 'text/html' });
    const failedAt = performance.now();
    const down = await seen('DOWN', (s) => s.status.startsWith('DOWN'));
    expect(down.at - failedAt).toBeLessThan(1000);
    expect(down.stat.last_agt).toBe('via agent : down');
    app.answer('/health', { status: 200, body: 'ok' });
    await seen('UP again', (s) => s.status === 'UP');
  });
});

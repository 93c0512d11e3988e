import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { agentLine } from './support/agent-client';
import { spawnSidecar, SidecarProcess, killLeftover } from './support/process';
import { freePort } from './support/sidecar';

/** The built sidecar with only the agent on: configuration errors, the ready line, SIGTERM. */
describe('the sidecar process with the agent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-proc-'));
  let running: SidecarProcess | undefined;

  afterEach(async () => {
    await killLeftover(running);
    running = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 78 listing every problem of the agent section, each with its path in the file', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'agent:\n  upstreams:\n    - { url: "ftp://x", retries: -1 }\n  loadSource: { url: "http://a/s", max: 0 }\n');
    running = spawnSidecar({ SIDECAR_CONFIG: file, POLLING_INTERVAL: 'soon' });
    expect(await running.exited).toBe(78);
    const err = running.stderr();
    expect(err).toMatch(/invalid configuration \(5 problems\)/);
    expect(err).toContain(`${file}: agent.upstreams[0].url: expected an absolute http:// or https:// URL`);
    expect(err).toContain(`${file}: agent.upstreams[0].retries: expected a whole number from 0 to 10`);
    expect(err).toContain(`${file}: agent.loadSource.field: required (a field path such as participants or stats.participants)`);
    expect(err).toContain(`${file}: agent.loadSource.max: expected a number above 0`);
    expect(err).toContain('POLLING_INTERVAL="soon": expected a number of seconds');
    expect(running.lines).toEqual([]);
  });

  it('exits 78 explaining a Kubernetes service link in AGENT_PORT', async () => {
    running = spawnSidecar({ AGENT_PORT: 'tcp://10.96.0.12:6060' });
    expect(await running.exited).toBe(78);
    expect(running.stderr()).toContain('AGENT_PORT="tcp://10.96.0.12:6060": expected a TCP port number, not a URL');
    expect(running.stderr()).toContain('enableServiceLinks: false');
  });

  it('names the agent among the features when nothing is configured', async () => {
    running = spawnSidecar({});
    expect(await running.exited).toBe(78);
    expect(running.stderr()).toContain('agent: set AGENT_PORT or UPSTREAM_HEALTH_URLS');
  });

  it('runs with the agent alone (no relay, no health check), says so, and exits 0 on SIGTERM', async () => {
    const [agentPort, managementPort] = [await freePort(), await freePort()];
    running = spawnSidecar({
      AGENT_PORT: String(agentPort),
      MANAGEMENT_PORT: String(managementPort),
      STATUS_INITIAL: 'drain',
      POLLING_INTERVAL: '0.2',
    });
    const ready = await running.ready;
    expect(ready).toMatchObject({ relayPort: null, relay: 'off', healthCheck: false, agent: true, agentPort });
    expect(await agentLine(agentPort)).toBe('up drain 0%\n');
    const res = await request(`http://127.0.0.1:${managementPort}`).get('/agent/report');
    expect(res.body).toMatchObject({ healthy: true, status: 'drain', weight: '0%', checks: [] });
    expect(running.lines.map((l) => JSON.parse(l).msg)).toEqual(expect.arrayContaining(['wrote the initial status file', 'agent state']));
    running.proc.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  });
});

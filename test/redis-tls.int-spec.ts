import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSidecar, SidecarProcess } from './support/process';
import { RecordingServer } from './support/recording-server';
import { RedisServer } from './support/redis-server';
import { freePort } from './support/sidecar';
import { makeTestCa } from './support/test-ca';
import { waitFor } from './support/wait-for';
import { teardown } from './support/teardown';

/**
 * rediss:// and REDIS_PASSWORD_FILE against a real redis-server that takes TLS only and
 * requires a password; its CA is trusted the way a pod would trust it (NODE_EXTRA_CA_CERTS).
 */
describe('coordination over TLS with a password (real redis-server)', () => {
  const ca = makeTestCa();
  const PASSWORD = 'correct-horse-battery-staple';
  const redis = new RedisServer({ tls: { cert: ca.serverCert, key: ca.serverKey, ca: ca.ca }, password: PASSWORD });
  const downstream = new RecordingServer();
  const secrets = mkdtempSync(join(tmpdir(), 'redis-secret-'));
  const running: SidecarProcess[] = [];

  beforeAll(async () => {
    await redis.start();
    await downstream.listen();
  });
  afterAll(() =>
    teardown(
      async () => {
        for (const p of running) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
        await Promise.all(running.map((p) => p.exited));
      },
      () => redis.close(),
      () => downstream.close(),
    ),
  );

  async function replica(password: string): Promise<{ relay: number; management: number; proc: SidecarProcess }> {
    const file = join(secrets, `password-${running.length}`);
    writeFileSync(file, `${password}\n`);
    const relay = await freePort();
    const management = await freePort();
    const proc = spawnSidecar({
      DOWNSTREAM_SERVICE_URL: downstream.url,
      RELAY_PORT: String(relay),
      MANAGEMENT_PORT: String(management),
      REDIS_URL: redis.url,
      REDIS_PASSWORD_FILE: file,
      NODE_EXTRA_CA_CERTS: ca.ca,
    });
    running.push(proc);
    await Promise.race([proc.ready, proc.exited.then(() => Promise.reject(new Error(proc.stderr() + proc.lines.join('\n'))))]);
    return { relay, management, proc };
  }

  const status = async (management: number) =>
    ((await (await fetch(`http://127.0.0.1:${management}/status`)).json()) as { coordination: { state: string; lastError: string | null } })
      .coordination;
  const post = (relay: number, id: string) =>
    fetch(`http://127.0.0.1:${relay}/hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-delivery': id },
      body: '{"tls":true}',
    });

  it('coordinates over rediss:// with the password from the file', async () => {
    const a = await replica(PASSWORD);
    const b = await replica(PASSWORD);
    expect((await status(a.management)).state).toBe('coordinating');
    const first = await post(a.relay, 'tls-1');
    expect([first.status, await first.text()]).toEqual([200, 'ok']);
    const second = await post(b.relay, 'tls-1');
    expect(second.status).toBe(202);
    expect(await second.json()).toMatchObject({ coordination: 'already_delivered' });
    expect(downstream.requests.filter((r) => r.headers['x-github-delivery'] === 'tls-1').length).toBe(1);
  });

  it('with a wrong password it delivers uncoordinated, says why, and never shows either password', async () => {
    const wrong = 'not-the-password-at-all';
    const c = await replica(wrong);
    await waitFor('the replica uncoordinated', async () => (await status(c.management)).state === 'uncoordinated');
    const res = await post(c.relay, 'tls-2');
    expect([res.status, await res.text()]).toEqual([200, 'ok']);
    const s = await status(c.management);
    expect(s.lastError).toMatch(/WRONGPASS|invalid username-password/i);
    const everything = JSON.stringify(s) + c.proc.lines.join('\n') + c.proc.stderr();
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(PASSWORD);
    expect(c.proc.lines.filter((l) => l.includes('Redis is unreachable')).length).toBe(1);
  });
});

import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killLeftover, spawnSidecar, SidecarProcess } from './support/process';
import { freePort } from './support/sidecar';

const MiB = 1024 * 1024;

/** VmHWM (peak resident set) and VmRSS of a process, in bytes. */
function memory(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { peak: kib('VmHWM'), now: kib('VmRSS') };
}

/**
 * Bodies held in memory are bounded across callers (RELAY_MAX_BUFFERED_BYTES): many large
 * uploads to a destination that never reads cannot take the process's memory, and a small
 * request to another destination is still answered at once.
 */
describe('relay memory under concurrent large uploads (built process)', () => {
  let stuck: NetServer;
  let healthy: Server;
  const stuckSockets = new Set<Socket>();
  let running: SidecarProcess | undefined;

  beforeAll(async () => {
    // Accepts connections and never reads a byte of them.
    stuck = createNetServer({ pauseOnConnect: true }, (s) => {
      stuckSockets.add(s);
      s.on('error', () => undefined);
    });
    healthy = createServer((req, res) => req.resume().on('end', () => res.end('small ok')));
    await Promise.all([
      new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r)),
      new Promise<void>((r) => healthy.listen(0, '127.0.0.1', r)),
    ]);
  });
  afterAll(async () => {
    await killLeftover(running);
    for (const s of stuckSockets) s.destroy();
    await Promise.all([new Promise((r) => stuck.close(r)), new Promise((r) => healthy.close(r))]);
  });

  it('40 × 25 MB uploads hanging on a destination that never reads: peak RSS ≤ 320 MiB, a small request elsewhere answered within a second', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-memory-'));
    const file = join(dir, 'dispatch.yaml');
    writeFileSync(
      file,
      `dispatch:
  header: X-Target
  default: http://127.0.0.1:${(healthy.address() as AddressInfo).port}
  rules:
    stuck:
      destination: http://127.0.0.1:${(stuck.address() as AddressInfo).port}
`,
    );
    const relayPort = await freePort();
    // The image's memory flags; the budget is the default (no container limit here: 64 MiB).
    running = spawnSidecar({
      SIDECAR_CONFIG: file,
      RELAY_PORT: String(relayPort),
      MANAGEMENT_PORT: String(await freePort()),
      NODE_OPTIONS: '--max-old-space-size-percentage=50 --max-semi-space-size=2',
    });
    await running.ready;
    const pid = running.proc.pid!;

    const body = Buffer.alloc(25 * 1000 * 1000, 0x41);
    const uploads: Socket[] = [];
    const answers: string[] = [];
    for (let i = 0; i < 40; i++) {
      const s = connect(relayPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => answers.push(d.toString('latin1').split('\r\n')[0]));
      s.write(`POST /upload/${i} HTTP/1.1\r\nHost: relay.test\r\nX-Target: stuck\r\nContent-Length: ${body.length}\r\n\r\n`);
      s.write(body);
      uploads.push(s);
    }
    try {
      // Let the uploads pile in, then ask for something small elsewhere, several times.
      let slowest = 0;
      for (let round = 0; round < 6; round++) {
        await new Promise((r) => setTimeout(r, 500));
        const started = performance.now();
        const res = await fetch(`http://127.0.0.1:${relayPort}/small`, { method: 'POST', body: 'x', signal: AbortSignal.timeout(5000) });
        expect([res.status, await res.text()]).toEqual([200, 'small ok']);
        slowest = Math.max(slowest, performance.now() - started);
      }
      expect(slowest).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 3000));
      const { peak } = memory(pid);
      process.stderr.write(`relay-memory: peak RSS ${(peak / MiB).toFixed(0)} MiB, slowest small request ${slowest.toFixed(0)} ms\n`);
      expect(peak).toBeLessThanOrEqual(320 * MiB);
      // Uploads with no room are told to come back (503 busy, Retry-After) rather than held.
      expect(answers.filter((l) => l.startsWith('HTTP/1.1 503')).length).toBeGreaterThan(30);
    } finally {
      for (const s of uploads) s.destroy();
    }
  }, 30_000);
});

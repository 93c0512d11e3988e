import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSidecar, SidecarProcess } from './support/process';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort } from './support/sidecar';

/** One keep-alive pool per test, destroyed after, so that no socket to a killed sidecar lingers. */
let agent: Agent;

function post(port: number, path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; id?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: 'POST', path, agent, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, id: res.statusCode === 202 ? JSON.parse(text).id : undefined }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** What a sender made: one event per (stream, n), with a unique body and delivery id. */
interface Sent {
  stream: number;
  n: number;
  deliveryId: string;
  body: Buffer;
  ids: string[];
}

function makeEvent(stream: number, n: number, pad = 100 + Math.floor(Math.random() * 2000)): Sent {
  const body = Buffer.concat([
    Buffer.from(`{"stream":${stream},"n":${n},"pad":"`),
    Buffer.from(randomBytes(pad).toString('base64')),
    Buffer.from('"}'),
  ]);
  return { stream, n, deliveryId: `${stream}-${n}-${randomBytes(4).toString('hex')}`, body, ids: [] };
}

/** Checks what arrived against what was accepted: each once, byte for byte, in order within each stream. */
function checkArrivals(sent: Sent[], arrived: Array<{ deliveryId: string; body: Buffer }>, allowedAgain: ReadonlySet<string> = new Set()) {
  const bySent = new Map(sent.map((s) => [s.deliveryId, s]));
  const seen = new Map<string, number>();
  const lastN = new Map<number, number>();
  for (const a of arrived) {
    const s = bySent.get(a.deliveryId);
    expect(s).toBeDefined();
    expect(a.body.equals(s!.body)).toBe(true);
    seen.set(a.deliveryId, (seen.get(a.deliveryId) ?? 0) + 1);
    if (seen.get(a.deliveryId)! > 1) {
      expect(allowedAgain.has(a.deliveryId)).toBe(true);
      continue;
    }
    expect(s!.n).toBeGreaterThan(lastN.get(s!.stream) ?? -1);
    lastN.set(s!.stream, s!.n);
  }
  expect(sent.filter((s) => !seen.has(s.deliveryId)).map((s) => s.deliveryId)).toEqual([]);
}

describe('spool mode, the built process', () => {
  let running: SidecarProcess[] = [];

  beforeEach(() => {
    agent = new Agent({ keepAlive: true, maxSockets: 16 });
  });
  afterEach(async () => {
    agent.destroy();
    for (const p of running) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
    }
    running = [];
  });

  async function ports() {
    return { relay: await freePort(), management: await freePort(), downstream: await freePort() };
  }

  function launch(env: Record<string, string>): SidecarProcess {
    const p = spawnSidecar(env);
    running.push(p);
    return p;
  }

  it('kill -9 in the middle of sending: after the restart every event arrives exactly once, in order per stream, byte for byte', async () => {
    const port = await ports();
    const env = {
      RELAY_MODE: 'spool',
      DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port.downstream}/hook`,
      SPOOL_PATH: mkdtempSync(join(tmpdir(), 'spool-crash-')),
      SPOOL_RETRY_INITIAL: '20ms',
      SPOOL_RETRY_MAX: '200ms',
      RELAY_PORT: String(port.relay),
      MANAGEMENT_PORT: String(port.management),
    };
    let sidecar = launch(env);
    await sidecar.ready;

    const STREAMS = 4;
    const PER_STREAM = 50;
    const sent: Sent[] = [];
    let accepted = 0;
    let back: Promise<void> | null = null;
    const restart = async () => {
      sidecar.proc.kill('SIGKILL');
      await sidecar.exited;
      sidecar = launch(env);
      await sidecar.ready;
    };

    // Each stream sends its events one after another and, like a webhook sender, sends
    // an event again (same delivery id) when it got no answer.
    await Promise.all(
      Array.from({ length: STREAMS }, async (_, stream) => {
        for (let n = 0; n < PER_STREAM; n++) {
          const event = makeEvent(stream, n);
          sent.push(event);
          for (;;) {
            try {
              const r = await post(port.relay, `/events/${stream}`, event.body, { 'x-github-delivery': event.deliveryId });
              expect(r.status).toBe(202);
              event.ids.push(r.id!);
              if (++accepted === (STREAMS * PER_STREAM) / 2) back = restart();
              break;
            } catch {
              await (back ?? new Promise((r) => setTimeout(r, 20)));
            }
          }
        }
      }),
    );
    const recovered = sidecar.lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'spool recovered');
    expect(recovered.events).toBeGreaterThanOrEqual(100);
    // A resent event that had been stored before the kill got its first id back.
    for (const e of sent) expect(new Set(e.ids).size).toBe(1);

    const downstream = new RecordingServer();
    await downstream.listen(port.downstream);
    try {
      await eventually(() => (downstream.requests.length >= sent.length ? true : undefined), 20_000, `${sent.length} deliveries`);
      await eventually(async () => {
        const s = await fetch(`http://127.0.0.1:${port.management}/spool`).then((r) => r.json() as Promise<{ events: number }>);
        return s.events === 0 ? true : undefined;
      });
      await new Promise((r) => setTimeout(r, 200));
      const arrived = downstream.requests.map((r) => ({ deliveryId: String(r.headers['x-github-delivery']), body: r.body }));
      expect(arrived).toHaveLength(STREAMS * PER_STREAM);
      checkArrivals(sent, arrived);
      expect(downstream.requests.every((r) => r.url.startsWith('/hook/events/'))).toBe(true);
    } finally {
      await downstream.close();
    }
  });

  it('kill -9 while compaction moves events of a destination that never answers: nothing lost, order kept, nothing delivered comes back but what was in flight', async () => {
    const port = await ports();
    const stuck = new RecordingServer();
    const healthy = new RecordingServer();
    stuck.respond = (_r, res) => res.writeHead(503).end();
    await stuck.listen();
    await healthy.listen();
    const dir = mkdtempSync(join(tmpdir(), 'spool-compact-crash-'));
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `dispatch:\n  header: X-Environment\n  default: ${healthy.url}/ok\n  rules:\n    stuck:\n      destination: ${stuck.url}/stuck\n`,
    );
    const env = {
      RELAY_MODE: 'spool',
      SIDECAR_CONFIG: config,
      SPOOL_PATH: join(dir, 'spool'),
      SPOOL_MAX_BYTES: '160000',
      SPOOL_RETRY_INITIAL: '20ms',
      SPOOL_RETRY_MAX: '100ms',
      RELAY_PORT: String(port.relay),
      MANAGEMENT_PORT: String(port.management),
    };
    let sidecar = launch(env);
    await sidecar.ready;
    const compactions = async () => {
      const text = await fetch(`http://127.0.0.1:${port.management}/metrics`).then((r) => r.text());
      return Number(/^sidecar_spool_compactions_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    try {
      // One event in ten for the destination that answers 503; the spool is full most of the
      // time, so compaction runs under pressure while the sender retries its 507s.
      const TOTAL = 500;
      const KILL_AT = [170, 340];
      const sent: Sent[] = [];
      let kills = 0;
      for (let n = 0; n < TOTAL; n++) {
        const event = makeEvent(n % 10 === 0 ? 1 : 0, n, 900);
        sent.push(event);
        const environment = event.stream === 1 ? 'stuck' : 'prod';
        for (let tries = 0; ; tries++) {
          const r = await post(port.relay, '/c', event.body, { 'x-environment': environment, 'x-github-delivery': event.deliveryId }).catch(
            () => null,
          );
          if (r?.status === 202) break;
          if (tries > 400) throw new Error(`event ${n} not accepted after 10 s: ${r?.status}`);
          await new Promise((res) => setTimeout(res, 25));
        }
        if (KILL_AT.includes(n)) {
          await eventually(async () => ((await compactions()) > 0 ? true : undefined), 10_000, 'a compaction before the kill');
          sidecar.proc.kill('SIGKILL');
          await sidecar.exited;
          kills++;
          sidecar = launch(env);
          await sidecar.ready;
        }
      }
      expect(kills).toBe(2);
      const toHealthy = sent.filter((e) => e.stream === 0);
      const toStuck = sent.filter((e) => e.stream === 1);
      await eventually(
        () => (new Set(healthy.requests.map((r) => String(r.headers['x-github-delivery']))).size >= toHealthy.length ? true : undefined),
        20_000,
        'every event at the healthy destination',
      );
      stuck.respond = (_r, res) => res.end('ok');
      await eventually(
        async () => {
          const s = await fetch(`http://127.0.0.1:${port.management}/spool`).then((r) => r.json() as Promise<{ events: number }>);
          return s.events === 0 ? true : undefined;
        },
        20_000,
        'an empty spool',
      );
      const arrivals = (server: RecordingServer) =>
        server.requests.map((r) => ({ deliveryId: String(r.headers['x-github-delivery']), body: r.body }));
      // The stuck destination answered 503 until now: its last arrivals, one per event it was
      // owed, must be each of them once, in order (a repeat would push one out of the window).
      const stuckDelivered = arrivals(stuck).slice(-toStuck.length);
      checkArrivals(toStuck, stuckDelivered);
      // At-least-once: a delivery answered just before a kill may go again (one in flight per destination, and acks not yet written); nothing else.
      const again = healthy.requests.length - toHealthy.length;
      expect(again).toBeLessThanOrEqual(3 * kills);
      checkArrivals(toHealthy, arrivals(healthy), new Set(arrivals(healthy).map((a) => a.deliveryId)));
    } finally {
      await stuck.close();
      await healthy.close();
    }
  });

  it('SIGTERM: the delivery under way is answered and not sent again, everything accepted is on disk, exit 0', async () => {
    const port = await ports();
    const env = {
      RELAY_MODE: 'spool',
      DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port.downstream}`,
      SPOOL_PATH: mkdtempSync(join(tmpdir(), 'spool-term-')),
      SPOOL_RETRY_INITIAL: '20ms',
      SPOOL_RETRY_MAX: '100ms',
      RELAY_PORT: String(port.relay),
      MANAGEMENT_PORT: String(port.management),
    };
    const downstream = new RecordingServer();
    let answeredAt = 0;
    downstream.respond = (_r, res) =>
      setTimeout(() => {
        answeredAt = Date.now();
        res.end('slow ok');
      }, 400);
    await downstream.listen(port.downstream);
    try {
      const first = launch(env);
      await first.ready;
      const events = Array.from({ length: 30 }, (_, n) => makeEvent(0, n, 50));
      for (const e of events.slice(0, 10))
        expect((await post(port.relay, '/t', e.body, { 'x-github-delivery': e.deliveryId })).status).toBe(202);
      await eventually(() => (downstream.requests.length === 1 ? true : undefined));
      // More arrive while it stops: each is either answered 202 (and then kept) or refused.
      const late = events.slice(10).map((e) =>
        post(port.relay, '/t', e.body, { 'x-github-delivery': e.deliveryId }).then(
          (r) => (r.status === 202 ? e : null),
          () => null,
        ),
      );
      first.proc.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      const exitedAt = Date.now();
      expect(answeredAt).toBeGreaterThan(0);
      expect(answeredAt).toBeLessThanOrEqual(exitedAt);
      const accepted = [...events.slice(0, 10), ...(await Promise.all(late)).filter((e): e is Sent => e !== null)];

      downstream.respond = (_r, res) => res.end('ok');
      const second = launch(env);
      await second.ready;
      await eventually(() => (downstream.requests.length >= accepted.length ? true : undefined), 10_000);
      await new Promise((r) => setTimeout(r, 200));
      checkArrivals(
        accepted,
        downstream.requests.map((r) => ({ deliveryId: String(r.headers['x-github-delivery']), body: r.body })),
      );
      expect(downstream.requests).toHaveLength(accepted.length);
    } finally {
      await downstream.close();
    }
  });

  it('SIGTERM with a destination that never answers: exits within SHUTDOWN_TIMEOUT_SECONDS and the cut event goes out after the restart', async () => {
    const port = await ports();
    const env = {
      RELAY_MODE: 'spool',
      DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port.downstream}`,
      SPOOL_PATH: mkdtempSync(join(tmpdir(), 'spool-term-stuck-')),
      SHUTDOWN_TIMEOUT_SECONDS: '0.5',
      RELAY_PORT: String(port.relay),
      MANAGEMENT_PORT: String(port.management),
    };
    const downstream = new RecordingServer();
    downstream.respond = () => undefined;
    await downstream.listen(port.downstream);
    try {
      const first = launch(env);
      await first.ready;
      const e = makeEvent(0, 0, 50);
      expect((await post(port.relay, '/stuck', e.body, { 'x-github-delivery': e.deliveryId })).status).toBe(202);
      await eventually(() => (downstream.requests.length === 1 ? true : undefined));
      const t0 = Date.now();
      first.proc.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(3000);

      downstream.respond = (_r, res) => res.end('ok');
      const second = launch(env);
      await second.ready;
      await eventually(() => (downstream.requests.length === 2 ? true : undefined));
      expect(downstream.requests[1].body.equals(e.body)).toBe(true);
    } finally {
      await downstream.close();
    }
  });

  it('flapping downstream under load: nothing lost, no duplicate the answer of which arrived, order kept, memory bounded', async () => {
    const port = await ports();
    const sidecar = launch({
      RELAY_MODE: 'spool',
      DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port.downstream}`,
      SPOOL_PATH: mkdtempSync(join(tmpdir(), 'spool-flap-')),
      SPOOL_RETRY_INITIAL: '10ms',
      SPOOL_RETRY_MAX: '100ms',
      RELAY_PORT: String(port.relay),
      MANAGEMENT_PORT: String(port.management),
    });
    await sidecar.ready;
    const downstream = new FlappingDownstream(port.downstream);
    downstream.start(250);
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(residentBytes(sidecar.proc.pid!)), 100);
    try {
      const STREAMS = 8;
      const PER_STREAM = 200;
      // Load goes on until the destination has gone through its whole cycle (down, up,
      // sick, up, down, up) at least once more: a fast sidecar must not finish early and
      // leave the flapping untested.
      const MIN_PHASES = 8;
      const sent: Sent[] = [];
      await Promise.all(
        Array.from({ length: STREAMS }, async (_, stream) => {
          for (let n = 0; n < PER_STREAM || (downstream.phases < MIN_PHASES && n < 20 * PER_STREAM); n++) {
            const e = makeEvent(stream, n, 100 + Math.floor(Math.random() * 6000));
            sent.push(e);
            expect((await post(port.relay, '/f', e.body, { 'x-github-delivery': e.deliveryId })).status).toBe(202);
          }
        }),
      );
      await downstream.steady();
      await eventually(
        () => (new Set(downstream.arrived.map((a) => a.deliveryId)).size >= sent.length ? true : undefined),
        30_000,
        'every event delivered',
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(downstream.phases).toBeGreaterThanOrEqual(MIN_PHASES);
      expect(downstream.refusedWhileSick).toBeGreaterThan(0);
      checkArrivals(sent, downstream.arrived, downstream.answerMaybeLost);
      const duplicates = downstream.arrived.length - sent.length;
      expect(duplicates).toBeLessThanOrEqual(downstream.answerMaybeLost.size);
      // Bodies total ~6 MB and the spool holds them on disk, not in memory.
      expect(Math.max(...rss)).toBeLessThan(220 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
      await downstream.stop();
    }
  });
});

function residentBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * A destination that keeps changing: up (records and answers 200), sick (answers 503 or
 * 429, records nothing) or down (its port refuses connections). Going down does not cut
 * an answer half-way; an answer that did not finish leaving all the same is noted, as
 * the one case where at-least-once delivery may repeat an event.
 */
class FlappingDownstream {
  readonly arrived: Array<{ deliveryId: string; body: Buffer }> = [];
  readonly answerMaybeLost = new Set<string>();
  phases = 0;
  refusedWhileSick = 0;
  private mode: 'up' | 'sick' | 'down' = 'down';
  private server: Server | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly port: number) {}

  start(everyMs: number): void {
    const cycle: Array<'up' | 'sick' | 'down'> = ['down', 'up', 'sick', 'up', 'down', 'up'];
    const next = async () => {
      await this.set(cycle[this.phases++ % cycle.length]);
      this.timer = setTimeout(() => void next(), everyMs * (0.5 + Math.random()));
    };
    void next();
  }

  async steady(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.set('up');
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.set('down');
  }

  private async set(mode: 'up' | 'sick' | 'down'): Promise<void> {
    this.mode = mode;
    if (mode === 'down') {
      const s = this.server;
      this.server = null;
      s?.close();
      s?.closeIdleConnections();
      return;
    }
    if (this.server) return;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.mode !== 'up') res.setHeader('connection', 'close');
        if (this.mode === 'sick') {
          this.refusedWhileSick++;
          res.writeHead(this.refusedWhileSick % 2 ? 503 : 429).end();
          return;
        }
        const deliveryId = String(req.headers['x-github-delivery']);
        this.arrived.push({ deliveryId, body: Buffer.concat(chunks) });
        res.on('close', () => {
          if (!res.writableFinished) this.answerMaybeLost.add(deliveryId);
        });
        res.end('ok');
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }
}

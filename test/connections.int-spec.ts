/**
 * The connection monitor against this machine's real /proc/net/tcp and tcp6: listeners on
 * `::` (Node's default, dual-stack: IPv4 clients show up in tcp6 as IPv4-mapped addresses)
 * and on 127.0.0.1, real connections opened and closed, and /connections, /metrics, the
 * state file and wait-for-idle.sh following them. Fixture tables stand in for procfs only
 * where a failure must be provoked.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { start } from './support/sidecar';
import { waitFor } from './support/wait-for';

type Started = Awaited<ReturnType<typeof start>>;

/** A TCP server that keeps every accepted socket, so the test decides who closes first. */
class Listener {
  readonly server: Server;
  readonly accepted: Socket[] = [];
  readonly clients: Socket[] = [];

  constructor(private readonly host: string) {
    this.server = createServer((s) => {
      s.on('error', () => undefined);
      this.accepted.push(s);
    });
  }

  port = 0;

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.host, () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  /** A client connection from `from`, resolved once the server has accepted it. */
  async connect(from: '127.0.0.1' | '::1'): Promise<Socket> {
    const before = this.accepted.length;
    const c = createConnection({ port: this.port, host: from });
    c.on('error', () => undefined);
    this.clients.push(c);
    await new Promise<void>((resolve, reject) => c.once('connect', resolve).once('error', reject));
    await waitFor('the server to accept', () => this.accepted.length > before);
    return c;
  }

  /** Closes everything with a reset, which leaves no TIME_WAIT behind for later tests. */
  async close(): Promise<void> {
    for (const s of [...this.clients, ...this.accepted]) s.resetAndDestroy();
    await new Promise((r) => this.server.close(r));
  }
}

async function connections(s: Started) {
  return (await request(s.managementUrl).get('/connections')).body;
}

async function metric(s: Started, name: string, port: number): Promise<number | undefined> {
  const text = (await request(s.managementUrl).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{port="${port}"} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

function stateFile(s: Started): Record<string, string> {
  try {
    const text = readFileSync(s.config.connections!.stateFilePath, 'utf8');
    return Object.fromEntries(
      text
        .trimEnd()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  } catch {
    return {};
  }
}

interface ScriptRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string; at: number }>;
}

/** Runs the installed wait-for-idle.sh with the system's sh, as a preStop `sh /shared/wait-for-idle.sh` does. */
function waitForIdle(s: Started, timeout: number): ScriptRun {
  const child = spawn('sh', [join(s.config.connections!.scriptDir, 'wait-for-idle.sh'), String(timeout)], {
    env: { PATH: process.env.PATH },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; at: number }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, at: performance.now() })),
  );
  return { child, done };
}

describe('connection monitor on the real socket tables', () => {
  let dual: Listener;
  let v4: Listener;
  let sidecar: Started | undefined;

  beforeEach(async () => {
    dual = new Listener('::');
    v4 = new Listener('127.0.0.1');
    await Promise.all([dual.listen(), v4.listen()]);
  });

  afterEach(async () => {
    await sidecar?.close();
    sidecar = undefined;
    await Promise.all([dual.close(), v4.close()]);
  });

  const startMonitor = async (env: Record<string, string> = {}) =>
    (sidecar = await start({ MONITOR_PORT: `${dual.port},${v4.port}`, REFRESH_RATE_SECONDS: '0.2', IDLE_SETTLE_SECONDS: '1', ...env }));

  it('counts connections over IPv4, IPv6 and IPv4-mapped; seconds_since_active and wait-for-idle.sh follow them', async () => {
    const s = await startMonitor();
    expect(s.relayPort).toBeNull(); // MONITOR_PORT alone switches on no relay

    // Idle from the start: both ports listened on, the quiet clock running.
    const idle = await connections(s);
    expect(idle).toMatchObject({ active_connections: 0, waiting_connections: 0, listening: true, error: null, skipped_lines: 0 });
    expect(idle.seconds_since_active).toEqual(expect.any(Number));
    expect(idle.ports).toEqual([
      { port: dual.port, active_connections: 0, waiting_connections: 0, listening: true, listen_addresses: ['::'], other_states: {} },
      { port: v4.port, active_connections: 0, waiting_connections: 0, listening: true, listen_addresses: ['127.0.0.1'], other_states: {} },
    ]);
    expect(statSync(join(s.config.connections!.scriptDir, 'wait-for-idle.sh')).mode & 0o777).toBe(0o555);
    expect(stateFile(s)).toMatchObject({ status: 'ok', active_connections: '0', ports: `${dual.port},${v4.port}` });
    const status = (await request(s.managementUrl).get('/status')).body;
    expect(status.features).toMatchObject({ relay: null, healthCheck: false, connections: [dual.port, v4.port] });
    expect(status.connections).toMatchObject({ active_connections: 0, listening: true });

    // An IPv4 client of the `::` listener (tcp6, ::ffff:127.0.0.1), an IPv6 one, and an IPv4 one of the other port.
    await dual.connect('127.0.0.1');
    await dual.connect('::1');
    await v4.connect('127.0.0.1');
    const busy = await connections(s); // read on request, not at the next refresh
    expect(busy).toMatchObject({ active_connections: 3, seconds_since_active: null, seconds_idle: null, listening: true });
    expect(busy.ports.map((p: { active_connections: number }) => p.active_connections)).toEqual([2, 1]);
    expect(await metric(s, 'sidecar_connections_active', dual.port)).toBe(2);
    expect(await metric(s, 'sidecar_connections_active', v4.port)).toBe(1);
    expect(await metric(s, 'sidecar_connections_listening', v4.port)).toBe(1);
    await waitFor('the state file to show 3 active', () => stateFile(s).active_connections === '3', {
      describeLast: () => JSON.stringify(stateFile(s)),
    });
    expect(stateFile(s).idle_since).toBe('');

    // With connections open the script waits, and says so at its timeout.
    const timedOut = await waitForIdle(s, 1).done;
    expect(timedOut).toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^Timed out after [12]s: 3 active connection\(s\)\n$/),
    });

    // A preStop starting now waits until the clients have gone and the settle time has passed.
    const preStop = waitForIdle(s, 20);
    let exited = false;
    void preStop.done.then(() => (exited = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(exited).toBe(false);
    const closedAt = performance.now();
    for (const c of [...dual.clients, ...v4.clients]) c.end(); // clients close first: no TIME_WAIT on the monitored ports

    const after = await waitFor('no active connection', async () => {
      const b = await connections(s);
      return b.active_connections === 0 && b;
    });
    expect(after).toMatchObject({ waiting_connections: 0, seconds_since_active: expect.any(Number), seconds_idle: expect.any(Number) });
    const result = await preStop.done;
    expect(result).toMatchObject({
      code: 0,
      stderr: '',
      stdout: expect.stringMatching(/^Idle: no active connection for [1-3]s \(settle time 1s\)\n$/),
    });
    // It returned after the close (whole-second clocks round the settle time), and not long after.
    expect(result.at - closedAt).toBeGreaterThan(0);
    expect(result.at - closedAt).toBeLessThan(4000);

    const later = await waitFor('seconds_since_active to count up', async () => {
      const b = await connections(s);
      return b.seconds_since_active >= 1 && b;
    });
    expect(later.seconds_idle).toBeGreaterThanOrEqual(1);
    expect(await metric(s, 'sidecar_connections_active', dual.port)).toBe(0);
  });

  it("counts a connection the server closed as waiting (TIME_WAIT), which keeps spawner's clock stopped but not wait-for-idle.sh", async () => {
    const s = await startMonitor();
    await dual.connect('127.0.0.1');
    expect((await connections(s)).active_connections).toBe(1);

    dual.accepted[0].end(); // the server closes first: its end of the connection lingers in TIME_WAIT
    const closed = await waitFor('TIME_WAIT on the monitored port', async () => {
      const b = await connections(s);
      return b.active_connections === 0 && b.waiting_connections >= 1 && b;
    });
    expect(closed).toMatchObject({ seconds_since_active: null, seconds_idle: expect.any(Number) });
    expect(closed.ports[0]).toMatchObject({ port: dual.port, waiting_connections: 1 });
    expect(await metric(s, 'sidecar_connections_waiting', dual.port)).toBe(1);

    const result = await waitForIdle(s, 10).done;
    expect(result).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Idle: /) });
    expect((await connections(s)).seconds_since_active).toBeNull();
  });

  it('reports a port nobody listens on as not listening', async () => {
    const s = await startMonitor();
    await new Promise((r) => v4.server.close(r));

    const b = await connections(s);
    expect(b.listening).toBe(false);
    expect(b.ports[1]).toMatchObject({ port: v4.port, listening: false, listen_addresses: [] });
    expect(b.ports[0]).toMatchObject({ listening: true });
    expect(await metric(s, 'sidecar_connections_listening', v4.port)).toBe(0);
  });
});

describe('connection monitor when the socket tables cannot be read', () => {
  let dir: string;
  let sidecar: Started | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'proc-net-'));
    for (const f of ['tcp', 'tcp6']) copyFileSync(join(__dirname, 'fixtures', 'proc-net', f), join(dir, f));
  });

  afterEach(async () => {
    await sidecar?.close();
    sidecar = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function counter(s: Started, name: string): Promise<number | undefined> {
    const text = (await request(s.managementUrl).get('/metrics')).text;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }

  it('answers 503 with the reason, counts the failure, tells wait-for-idle.sh not to wait, and recovers', async () => {
    const s = (sidecar = await start({ MONITOR_PORT: '8080', REFRESH_RATE_SECONDS: '0.2', PROC_NET_PATH: dir }));
    // The fixture tables: malformed lines are skipped and counted, never fatal.
    const ok = await request(s.managementUrl).get('/connections');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ active_connections: 4, waiting_connections: 2, listening: true, skipped_lines: 4 });
    expect(await counter(s, 'sidecar_connections_unparsed_lines_total')).toBeGreaterThanOrEqual(8);

    rmSync(join(dir, 'tcp'));
    const failed = await request(s.managementUrl).get('/connections');
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({
      active_connections: null,
      waiting_connections: null,
      seconds_since_active: null,
      listening: null,
      seconds_idle: null,
      ports: [],
    });
    expect(failed.body.error).toMatch(/^cannot read the socket tables in .*: ENOENT/);
    expect(await counter(s, 'sidecar_connections_read_failures_total')).toBeGreaterThanOrEqual(1);
    expect(await counter(s, 'sidecar_connections_tables_readable')).toBe(0);
    await waitFor('status=error in the state file', () => stateFile(s).status === 'error');
    expect(stateFile(s).error).toMatch(/ENOENT/);
    const script = await waitForIdle(s, 20).done;
    expect(script).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^The sidecar cannot read the socket tables: cannot read .*ENOENT.*; not waiting\n$/),
    });

    copyFileSync(join(__dirname, 'fixtures', 'proc-net', 'tcp'), join(dir, 'tcp'));
    await waitFor('the state file to recover', () => stateFile(s).status === 'ok');
    expect((await request(s.managementUrl).get('/connections')).status).toBe(200);
    expect(await counter(s, 'sidecar_connections_tables_readable')).toBe(1);
  });

  it('takes a missing tcp6 table (IPv6 disabled) for no IPv6 sockets', async () => {
    rmSync(join(dir, 'tcp6'));
    const s = (sidecar = await start({ MONITOR_PORT: '8080', PROC_NET_PATH: dir }));
    const b = await request(s.managementUrl).get('/connections');
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ active_connections: 2, waiting_connections: 1, skipped_lines: 0, error: null });
  });

  it('starts, and reports, when the tables are missing from the start', async () => {
    const s = (sidecar = await start({ MONITOR_PORT: '8080', PROC_NET_PATH: join(dir, 'absent') }));
    expect((await request(s.managementUrl).get('/connections')).status).toBe(503);
    expect(stateFile(s).status).toBe('error');
    expect((await request(s.managementUrl).get('/healthz')).status).toBe(200);
  });

  it('writes the state file where CONNECTIONS_FILE_PATH says, creating its directory', async () => {
    const target = join(dir, 'nested', 'state.txt');
    const s = (sidecar = await start({ MONITOR_PORT: '8080', PROC_NET_PATH: dir, CONNECTIONS_FILE_PATH: target }));
    expect(readFileSync(target, 'utf8')).toMatch(/^status=ok\nupdated_at=\d+\nports=8080\nactive_connections=4\n/);
    expect(s.config.connections!.stateFilePath).toBe(target);
  });
});

import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { loadConfig } from '../config/load-config';
import { ConnectionsModule } from './connections.module';
import { ConnectionsService } from './connections.service';
import { ConnectionsStatus } from './connections.status';
import { ProcNet, type TcpTablesText } from './proc-net';

/**
 * ConnectionsService as ConnectionsModule builds it from a loaded configuration, reading
 * socket tables written by the test (the kernel's format, see proc-net-tcp.spec.ts) and
 * writing its state file to a temporary shared volume.
 */

const STATES = { ESTABLISHED: '01', TIME_WAIT: '06', CLOSE_WAIT: '08', LISTEN: '0A' } as const;
type State = keyof typeof STATES;

const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
/** 127.0.0.1 as a little-endian host writes it. */
const LOOPBACK_V4 = '0100007F';
const LOOPBACK_V6 = '00000000000000000000000001000000';

/** One table in /proc/net/tcp or tcp6 layout, a line per socket. */
function table(family: 'ipv4' | 'ipv6', sockets: Array<[local: number, remote: number, state: State]>): string {
  const address = family === 'ipv4' ? LOOPBACK_V4 : LOOPBACK_V6;
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  return (
    header +
    sockets
      .map(
        ([local, remote, state], i) =>
          `  ${i}: ${address}:${hexPort(local)} ${address}:${hexPort(remote)} ${STATES[state]} 00000000:00000000 00:00000000 00000000  1000        0 ${40000 + i} 1 0000000000000000 20 4 30 10 -1\n`,
      )
      .join('')
  );
}

/** The kernel's tables as a test sets them; a read may be held open or fail. */
class FakeProcNet {
  readonly dir = '/fake/proc/net';
  readonly littleEndian = true;
  tables: TcpTablesText = { tcp: table('ipv4', []), tcp6: table('ipv6', []) };
  failure: Error | null = null;
  reads = 0;
  private held: { promise: Promise<void>; release: () => void } | null = null;

  /** Reads wait until the returned function (or release()) is called. */
  hold(): () => void {
    let release!: () => void;
    this.held = { promise: new Promise<void>((r) => (release = r)), release };
    return () => this.release();
  }

  release(): void {
    this.held?.release();
    this.held = null;
  }

  async readTables(): Promise<TcpTablesText> {
    this.reads++;
    // What the kernel had when the read began.
    const { tables, failure } = this;
    if (this.held) await this.held.promise;
    if (failure) throw failure;
    return tables;
  }
}

/** Port 8080 busy, 9090 listened on and quiet; 5432 (not monitored) busier still. */
const BUSY: TcpTablesText = {
  tcp: table('ipv4', [
    [8080, 0, 'LISTEN'],
    [8080, 50001, 'ESTABLISHED'],
    [8080, 50002, 'TIME_WAIT'],
    [8080, 50003, 'CLOSE_WAIT'],
    [9090, 0, 'LISTEN'],
    [5432, 0, 'LISTEN'],
    [5432, 50010, 'ESTABLISHED'],
    [5432, 50011, 'ESTABLISHED'],
    [5432, 50012, 'ESTABLISHED'],
    // This process's own connection to some 8080: its local port is an ephemeral one.
    [50020, 8080, 'ESTABLISHED'],
  ]),
  tcp6: table('ipv6', [
    [8080, 0, 'LISTEN'],
    [8080, 50030, 'ESTABLISHED'],
  ]),
};

async function metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = register.getSingleMetric(name);
  if (!m) return undefined;
  const { values } = await m.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

/** Waits (polling briefly) until `probe` holds, or fails with what it last saw. */
async function until(what: string, probe: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ConnectionsService', () => {
  let dir: string;
  let procNet: FakeProcNet;
  let moduleRef: TestingModule | undefined;
  const stateFile = () => join(dir, 'connections.txt');

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'connections-service-'));
    procNet = new FakeProcNet();
  });
  afterEach(async () => {
    procNet.release(); // a test that failed while holding a read must not hang the shutdown
    await moduleRef?.close();
    moduleRef = undefined;
    register.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  async function build(env: Record<string, string> = {}): Promise<ConnectionsService> {
    const loaded = loadConfig({ SHARED_VOLUME_PATH: dir, MONITOR_PORT: '8080,9090', REFRESH_RATE_SECONDS: '0.1', ...env });
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    moduleRef = await Test.createTestingModule({ imports: [ScheduleModule.forRoot(), ConnectionsModule.forRoot(loaded.config)] })
      .overrideProvider(ProcNet)
      .useValue(procNet)
      .compile();
    return moduleRef.get(ConnectionsService);
  }

  it('counts ESTABLISHED and TIME_WAIT sockets by monitored local port, over both tables, and nothing else', async () => {
    procNet.tables = BUSY;
    const service = await build();
    const s = await service.refresh();
    expect(s.error).toBeNull();
    expect(s.ports).toEqual([
      { port: 8080, active: 2, waiting: 1, listening: true, listenAddresses: ['127.0.0.1', '::1'], otherStates: { CLOSE_WAIT: 1 } },
      { port: 9090, active: 0, waiting: 0, listening: true, listenAddresses: ['127.0.0.1'], otherStates: {} },
    ]);
    expect(service.last).toBe(s);
    expect(moduleRef!.get(ConnectionsStatus).status()).toMatchObject({
      active_connections: 2,
      waiting_connections: 1,
      listening: true,
      seconds_since_active: null,
      error: null,
    });
    expect(await metric('sidecar_connections_active', { port: '8080' })).toBe(2);
    expect(await metric('sidecar_connections_active', { port: '9090' })).toBe(0);
    expect(await metric('sidecar_connections_listening', { port: '9090' })).toBe(1);
    // The unmonitored port gets no series.
    expect(await metric('sidecar_connections_active', { port: '5432' })).toBeUndefined();
  });

  it('has nothing to show before the first read', async () => {
    const service = await build();
    expect(service.last).toBeNull();
    expect(moduleRef!.get(ConnectionsStatus).status()).toBeNull();
    expect(procNet.reads).toBe(0);
  });

  it('gives concurrent refreshes one read, and reads afresh after it', async () => {
    procNet.tables = BUSY;
    const service = await build();
    const release = procNet.hold();
    const during = [service.refresh(), service.refresh(), service.refresh()];
    expect(new Set(during).size).toBe(1);
    // What changes while the read is in progress is not in it.
    procNet.tables = { tcp: table('ipv4', [[8080, 0, 'LISTEN']]), tcp6: '' };
    release();
    const snapshots = await Promise.all(during);
    expect(procNet.reads).toBe(1);
    expect(snapshots.every((s) => s === snapshots[0])).toBe(true);
    expect(snapshots[0].ports[0].active).toBe(2);

    const after = await service.refresh();
    expect(procNet.reads).toBe(2);
    expect(after.ports[0]).toMatchObject({ port: 8080, active: 0, waiting: 0, listening: true });
  });

  it('reports a failed read as an error with null counts, never as idle, and recovers', async () => {
    procNet.tables = BUSY;
    const service = await build();
    procNet.failure = new Error('EACCES: permission denied');
    const failed = await service.refresh();
    expect(failed.error).toBe('cannot read the socket tables in /fake/proc/net: EACCES: permission denied');
    expect(failed.ports).toEqual([]);
    expect(moduleRef!.get(ConnectionsStatus).status()).toMatchObject({ active_connections: null, listening: null });
    expect(await metric('sidecar_connections_read_failures_total')).toBe(1);
    expect(await metric('sidecar_connections_tables_readable')).toBe(0);

    procNet.failure = null;
    expect((await service.refresh()).error).toBeNull();
    expect(await metric('sidecar_connections_tables_readable')).toBe(1);
  });

  it('starts the quiet clock at the first read that finds the ports quiet', async () => {
    procNet.tables = BUSY;
    const service = await build();
    expect((await service.refresh()).clocks).toEqual({ quietSince: null, idleSince: null });
    procNet.tables = { tcp: table('ipv4', [[8080, 0, 'LISTEN']]), tcp6: '' };
    const quiet = await service.refresh();
    expect(quiet.clocks).toEqual({ quietSince: quiet.at, idleSince: quiet.at });
    expect((await service.refresh()).clocks).toEqual(quiet.clocks);
  });

  it('on start-up writes wait-for-idle.sh and the state file, then rewrites it every REFRESH_RATE_SECONDS until shutdown', async () => {
    procNet.tables = BUSY;
    await build();
    await moduleRef!.init(); // onModuleInit: the first read and write happen before anything is served
    expect(existsSync(join(dir, 'wait-for-idle.sh'))).toBe(true);
    expect(readFileSync(join(dir, 'wait-for-idle.sh'), 'utf8')).toContain(stateFile());
    const first = readFileSync(stateFile(), 'utf8');
    expect(first).toMatch(/^status=ok\n/);
    expect(first).toContain('ports=8080,9090\n');
    expect(first).toContain('active_connections=2\n');
    expect(first).toContain('waiting_connections=1\n');
    expect(first).toContain('listening=true\n');
    expect(first).toContain('idle_since=\n');

    // The port empties: a scheduled read notices and the file says so.
    procNet.tables = { tcp: table('ipv4', [[8080, 0, 'LISTEN']]), tcp6: '' };
    await until('the state file to show the port idle', () => readFileSync(stateFile(), 'utf8').includes('active_connections=0\n'));
    expect(readFileSync(stateFile(), 'utf8')).toMatch(/\nlistening=false\n/); // 9090 is no longer listened on

    procNet.failure = new Error('EIO');
    await until('the state file to show the error', () => readFileSync(stateFile(), 'utf8').startsWith('status=error\n'));
    expect(readFileSync(stateFile(), 'utf8')).toContain('error=cannot read the socket tables in /fake/proc/net: EIO\n');
    expect(readFileSync(stateFile(), 'utf8')).not.toContain('active_connections=');

    await moduleRef!.close();
    moduleRef = undefined;
    const reads = procNet.reads;
    await new Promise((r) => setTimeout(r, 300)); // three refresh intervals
    expect(procNet.reads).toBe(reads);
  });
});

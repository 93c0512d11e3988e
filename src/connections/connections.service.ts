import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../common/atomic-write';
import { InjectSettings } from '../config/settings';
import type { ConnectionsConfig } from '../config/sidecar-config';
import { installScript } from '../common/shell-scripts';
import { renderWaitForIdleScript, WAIT_FOR_IDLE_SCRIPT } from './wait-for-idle-script';
import { advanceClocks, ConnectionsSnapshot, renderStateFile, tally } from './activity';
import { ConnectionsMetrics } from './connections-metrics';
import { ProcNet } from './proc-net';
import { parseProcNetTcp } from './proc-net-tcp';

const INTERVAL = 'connections';

/**
 * The connection activity of the monitored ports. The kernel's tables are read every
 * REFRESH_RATE_SECONDS and on each request (reads never overlap: a request during a read
 * gets that read); each scheduled read also rewrites the state file for wait-for-idle.sh,
 * and its freshness is what tells the script the sidecar is alive.
 */
@Injectable()
export class ConnectionsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Connections');
  private readonly ports: ReadonlySet<number>;
  private snapshot: ConnectionsSnapshot | null = null;
  private reading: Promise<ConnectionsSnapshot> | null = null;
  private writing: Promise<void> | null = null;
  private writeFailing = false;

  constructor(
    @InjectSettings('connections') private readonly config: ConnectionsConfig,
    private readonly procNet: ProcNet,
    private readonly scheduler: SchedulerRegistry,
    private readonly metrics: ConnectionsMetrics,
  ) {
    this.ports = new Set(this.config.ports);
  }

  /** The last read, or null before the first one. */
  get last(): ConnectionsSnapshot | null {
    return this.snapshot;
  }

  /**
   * How old the state file may get before wait-for-idle.sh stops trusting it: two refresh
   * intervals, so that one slow or failed write is not taken for a dead sidecar, and slack
   * for the script's whole-second clock.
   */
  get staleAfterSeconds(): number {
    return Math.ceil((2 * this.config.refreshMs) / 1000) + 3;
  }

  /** The first read and the state file are there before anything is served: a preStop right after start-up finds them. */
  onModuleInit(): Promise<void> {
    return this.start();
  }

  /** Writes wait-for-idle.sh, reads the tables and writes the state file once, then schedules the rest. */
  async start(): Promise<void> {
    await installScript(
      this.config.scriptDir,
      WAIT_FOR_IDLE_SCRIPT,
      renderWaitForIdleScript({
        stateFilePath: this.config.stateFilePath,
        settleSeconds: this.config.idleSettleSeconds,
        staleAfterSeconds: this.staleAfterSeconds,
      }),
    );
    await mkdir(dirname(this.config.stateFilePath), { recursive: true });
    await this.tick();
    this.scheduler.addInterval(
      INTERVAL,
      setInterval(() => void this.tick(), this.config.refreshMs),
    );
  }

  /** Reads the tables now, or joins the read in progress. */
  refresh(): Promise<ConnectionsSnapshot> {
    this.reading ??= this.read().finally(() => (this.reading = null));
    return this.reading;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', INTERVAL)) this.scheduler.deleteInterval(INTERVAL);
    await this.reading;
    await this.writing;
  }

  private async tick(): Promise<void> {
    await this.refresh();
    // A write still going (a slow volume) is left to finish; the next tick writes what is newest then.
    if (this.writing) return;
    this.writing = this.writeState().finally(() => (this.writing = null));
    await this.writing;
  }

  private async read(): Promise<ConnectionsSnapshot> {
    const at = Date.now();
    const previous = this.snapshot;
    let next: ConnectionsSnapshot;
    try {
      const tables = await this.procNet.readTables();
      const options = { localPorts: this.ports, littleEndian: this.procNet.littleEndian };
      const v4 = parseProcNetTcp(tables.tcp, 'ipv4', options);
      const v6 = parseProcNetTcp(tables.tcp6, 'ipv6', options);
      const ports = tally([...v4.sockets, ...v6.sockets], this.config.ports);
      const active = ports.reduce((n, p) => n + p.active, 0);
      const waiting = ports.reduce((n, p) => n + p.waiting, 0);
      const skippedLines = v4.skipped + v6.skipped;
      next = { at, error: null, ports, skippedLines, clocks: advanceClocks(previous?.clocks ?? null, { active, waiting }, at) };
      if (previous?.error) this.logger.log({ msg: 'socket tables readable again', dir: this.procNet.dir });
      if (skippedLines > 0 && !previous?.skippedLines) {
        this.logger.warn({ msg: 'lines of the socket tables could not be parsed and were skipped', dir: this.procNet.dir, skippedLines });
      }
    } catch (e) {
      const error = `cannot read the socket tables in ${this.procNet.dir}: ${(e as Error).message}`;
      next = { at, error, ports: [], skippedLines: 0, clocks: advanceClocks(previous?.clocks ?? null, null, at) };
      if (previous?.error !== error)
        this.logger.error({ msg: 'cannot read the socket tables', dir: this.procNet.dir, reason: (e as Error).message });
    }
    this.snapshot = next;
    this.metrics.observe(next);
    return next;
  }

  private async writeState(): Promise<void> {
    const s = this.snapshot!;
    try {
      await writeFileAtomic(this.config.stateFilePath, renderStateFile(s, this.config.ports));
      if (this.writeFailing) this.logger.log({ msg: 'connections state file written again', path: this.config.stateFilePath });
      this.writeFailing = false;
    } catch (e) {
      this.metrics.stateFileWriteFailed();
      if (!this.writeFailing)
        this.logger.error({
          msg: 'cannot write the connections state file',
          path: this.config.stateFilePath,
          reason: (e as Error).message,
        });
      this.writeFailing = true;
    }
  }
}

import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait-for';

export const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';

/** One server's row of `show stat`, by column name (status, weight, agent_status, last_agt, ...). */
export type ServerStat = Record<string, string>;

/**
 * A real HAProxy in the foreground (-db) with a generated config in a temporary directory
 * and an admin stats socket there, for tests that watch what it makes of an agent.
 */
export class HaproxyProcess {
  readonly dir = mkdtempSync(join(tmpdir(), 'haproxy-'));
  readonly socketPath = join(this.dir, 'haproxy.sock');
  private proc: ChildProcess | null = null;
  private output = '';

  /** Starts HAProxy with `body` (backends, servers) after a global section that opens the stats socket. */
  async start(body: string): Promise<void> {
    const cfg = join(this.dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        `  stats socket ${this.socketPath} level admin`,
        'defaults',
        '  mode http',
        '  timeout connect 1s',
        '  timeout client 5s',
        '  timeout server 5s',
        body,
        '',
      ].join('\n'),
    );
    this.proc = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    const failed = new Promise<never>((_, reject) => {
      this.proc!.once('error', reject);
      this.proc!.once('exit', (code) => reject(new Error(`haproxy exited with ${code}:\n${this.output}`)));
    });
    failed.catch(() => undefined);
    await Promise.race([
      failed,
      waitFor(
        'the HAProxy stats socket',
        () =>
          this.command('show info').then(
            () => true,
            () => false,
          ),
        { timeoutMs: 5000 },
      ),
    ]);
  }

  /** One command on the stats socket; HAProxy answers and closes. */
  command(cmd: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const c = connect(this.socketPath);
      let out = '';
      c.on('data', (d: Buffer) => (out += d.toString()));
      c.on('end', () => resolve(out));
      c.on('error', reject);
      c.end(`${cmd}\n`);
    });
  }

  /** `show stat` for one server of one backend. */
  async server(backend: string, server: string): Promise<ServerStat> {
    const [header, ...rows] = (await this.command('show stat')).trim().split('\n');
    const names = header.replace(/^# /, '').split(',');
    for (const row of rows) {
      const values = row.split(',');
      const stat = Object.fromEntries(names.map((n, i) => [n, values[i]]));
      if (stat.pxname === backend && stat.svname === server) return stat;
    }
    throw new Error(`no server ${backend}/${server} in show stat`);
  }

  /** What HAProxy printed (its warnings name each state change). */
  get log(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

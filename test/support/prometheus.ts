import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './sidecar';
import { waitFor } from './wait-for';

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

export interface Vector {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Matrix {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

/**
 * A real Prometheus (the Debian package) on a loopback port, with the remote-write
 * receiver on, no scrape jobs, and its TSDB in a temporary directory. It can be stopped
 * and started again on the same port and data, as a restarted backend would be.
 */
export class PrometheusServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  port = 0;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  log = '';

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get writeUrl(): string {
    return `${this.url}/api/v1/write`;
  }

  async start(): Promise<void> {
    if (this.port === 0) {
      this.port = await freePort();
      writeFileSync(join(this.dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1m\nscrape_configs: []\n');
    }
    const proc = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${join(this.dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(this.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
        '--web.enable-remote-write-receiver',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(
      'Prometheus to be ready',
      async () => {
        if (proc.exitCode !== null) throw new Error(`prometheus exited with ${proc.exitCode}: ${this.log.slice(-2000)}`);
        try {
          return (await fetch(`${this.url}/-/ready`)).ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15_000, everyMs: 50 },
    );
  }

  /** SIGTERM, as Kubernetes stops it: Prometheus flushes its WAL and exits. */
  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    await this.exited;
    this.proc = null;
  }

  async query<T extends Vector | Matrix = Vector>(expr: string): Promise<T[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr, time: String(Date.now() / 1000) }).toString()}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: T[] } };
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
    return body.data.result;
  }
}

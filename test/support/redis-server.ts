import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './sidecar';
import { waitFor } from './wait-for';

const SERVER = ['/usr/bin/redis-server', '/usr/sbin/redis-server', 'redis-server'];

/**
 * A real redis-server (the Debian package, scripts/install-test-peers.sh) on a free
 * loopback port with a temporary directory and no persistence; `stop` and `start` again
 * on the same port, as a restart of the Redis pod would look to the sidecars.
 */
export class RedisServer {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private readonly dir = mkdtempSync(join(tmpdir(), 'redis-test-'));
  port = 0;
  output = '';

  /**
   * `tls`: the server takes TLS only (on its port), with this certificate and key; `password`:
   * it requires AUTH with it.
   */
  constructor(private readonly options: { tls?: { cert: string; key: string; ca: string }; password?: string } = {}) {}

  get url(): string {
    return `${this.options.tls ? 'rediss' : 'redis'}://${this.options.tls ? 'localhost' : '127.0.0.1'}:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const bin = process.env.REDIS_SERVER_BIN ?? SERVER.find((p) => p.startsWith('/') && existsSync(p)) ?? 'redis-server';
    const t = this.options.tls;
    const listen = t
      ? [
          '--port',
          '0',
          '--tls-port',
          String(this.port),
          '--tls-cert-file',
          t.cert,
          '--tls-key-file',
          t.key,
          '--tls-ca-cert-file',
          t.ca,
          '--tls-auth-clients',
          'no',
        ]
      : ['--port', String(this.port)];
    const auth = this.options.password === undefined ? [] : ['--requirepass', this.options.password];
    const child = spawn(
      bin,
      [...listen, ...auth, '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout.setEncoding('utf8').on('data', (s: string) => (this.output = (this.output + s).slice(-4000)));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (this.output = (this.output + s).slice(-4000)));
    this.exited = new Promise((r) => child.once('exit', () => r()));
    this.child = child;
    await waitFor('redis-server to answer PING', () => this.ping(), { timeoutMs: 10_000, everyMs: 50, describeLast: () => this.output });
  }

  /** One PING over a raw socket (TLS when the server takes TLS): true when it answers (PONG, or NOAUTH with a password). */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const t = this.options.tls;
      const s = t
        ? connectTls({ port: this.port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(t.ca) })
        : connect(this.port, '127.0.0.1');
      let got = '';
      s.setTimeout(1_000, () => s.destroy());
      s.on(t ? 'secureConnect' : 'connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n')) {
          s.destroy();
          resolve(got.startsWith('+PONG') || got.startsWith('-NOAUTH'));
        }
      });
      s.on('error', () => resolve(false));
      s.on('close', () => resolve(false));
    });
  }

  /** SIGSTOP / SIGCONT: a Redis that stops answering without closing its connections. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** SIGKILL: the server is gone at once, with its keys. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await this.exited;
    this.child = null;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

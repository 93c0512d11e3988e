import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

/** The real npm smee-client's CLI (bin "smee"). */
const SMEE_BIN = join(__dirname, '..', '..', 'node_modules', 'smee-client', 'bin', 'smee.js');

/**
 * The real smee-client CLI (`smee -u <source> -t <target>`) as a child process, run with
 * the same Node as the tests. Its output is kept for failure messages.
 */
export class SmeeClientProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  output = '';

  constructor(
    private readonly source: string,
    private readonly target: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error('smee-client is already running');
    // smee-client routes through EnvHttpProxyAgent: keep any proxy settings away from loopback.
    const env: NodeJS.ProcessEnv = { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
    for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) delete env[k];
    const child = spawn(process.execPath, [SMEE_BIN, '-u', this.source, '-t', this.target], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((r) => child.once('exit', () => r()));
    this.child = child;
  }

  /** Sends `signal` to the process (SIGSTOP/SIGCONT freeze and thaw it). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Kills the process and waits for it to be gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (this.running) {
      child.kill('SIGKILL'); // acts on a frozen (SIGSTOPped) process too
    }
    await this.exited;
    this.child = null;
  }
}

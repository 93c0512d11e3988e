import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MAIN = join(__dirname, '..', '..', 'dist', 'main.js');

export interface SidecarProcess {
  proc: ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with the parsed "ready" line. */
  ready: Promise<Record<string, unknown>>;
}

/**
 * Runs the built sidecar (`dist/main.js`, as the image does) with `env` on top of a minimal
 * environment; `args` are its command-line arguments, `cwd` its working directory.
 */
export function spawnSidecar(env: Record<string, string>, opts: { args?: string[]; cwd?: string } = {}): SidecarProcess {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first (npm test does)`);
  const proc = spawn(process.execPath, [MAIN, ...(opts.args ?? [])], {
    env: { PATH: process.env.PATH, SHARED_VOLUME_PATH: mkdtempSync(join(tmpdir(), 'sidecar-proc-')), LISTEN_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const lines: string[] = [];
  let err = '';
  let partial = '';
  let onReady: (v: Record<string, unknown>) => void;
  const ready = new Promise<Record<string, unknown>>((r) => (onReady = r));
  proc.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(line);
      if (line.includes('"pod-sidecar ready"')) onReady(JSON.parse(line));
    }
  });
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, lines, stderr: () => err, exited, ready };
}

/** Kills a sidecar a test left running (SIGKILL) and waits for it to be gone. */
export async function killLeftover(running: SidecarProcess | undefined): Promise<void> {
  if (running && running.proc.exitCode === null && running.proc.signalCode === null) {
    running.proc.kill('SIGKILL');
    await running.exited;
  }
}

import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where a command lives on this machine, sbin included, or undefined. */
export function which(cmd: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat('/usr/sbin', '/sbin', '/bin', '/usr/bin');
  return dirs.map((d) => join(d, cmd)).find((p) => existsSync(p));
}

export interface Shell {
  name: string;
  binary: string | undefined;
  /** busybox runs as an alpine-like userland: its applets alone on PATH. */
  busybox: boolean;
}

/**
 * The shells the sidecar's scripts must run under: dash and busybox sh always (CI installs
 * them; a missing one fails the suite), bash where it is installed.
 */
export const SHELLS: Shell[] = [
  { name: 'dash', binary: which('dash'), busybox: false },
  { name: 'busybox sh', binary: which('busybox'), busybox: true },
  { name: 'bash', binary: which('bash'), busybox: false },
].filter((s) => s.name !== 'bash' || s.binary !== undefined);

/**
 * Makes `binDir` a place where `sh` is this shell, so that scripts calling `sh` nest under
 * it too. For busybox, `applets` are linked there and PATH holds that directory alone.
 */
export function shellBin(shell: Shell, binDir: string, applets: string[]): { sh: string; path: string } {
  if (!shell.binary) throw new Error(`${shell.name} is not installed: run scripts/install-test-peers.sh`);
  mkdirSync(binDir);
  if (shell.busybox) {
    for (const applet of applets) symlinkSync(shell.binary, join(binDir, applet));
    return { sh: join(binDir, 'sh'), path: binDir };
  }
  symlinkSync(shell.binary, join(binDir, 'sh'));
  return { sh: join(binDir, 'sh'), path: `${binDir}${delimiter}${process.env.PATH ?? '/usr/bin:/bin'}` };
}

import { readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { writeFileAtomic } from '../../common/atomic-write';

interface Owner {
  pid: number;
  host: string;
  startedAt: string;
}

/** How often the owner touches the lock, and how old a lock of another host must be to count as left behind. */
const HEARTBEAT_MS = 5_000;
const STALE_MS = 30_000;

/**
 * One sidecar per spool directory: two writers would each delete segments the other
 * still needs. The lock file names its owner. A lock left by a process that is gone (same
 * host, pid not running, or our own pid after a container restart) is taken over at once;
 * one from another host only when it has not been touched for 30 s.
 */
export class SpoolLock {
  private timer: NodeJS.Timeout | null = null;
  private readonly me: Owner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };

  constructor(private readonly path: string) {}

  async acquire(): Promise<void> {
    try {
      await writeFile(this.path, JSON.stringify(this.me), { flag: 'wx', mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = await this.holder();
      if (holder !== null && !(await this.leftBehind(holder))) {
        throw new Error(
          `the spool at ${this.path.replace(/\/[^/]*$/, '')} is in use by pid ${holder.pid} on ${holder.host} since ${holder.startedAt}; a spool belongs to one sidecar (lock file ${this.path})`,
          { cause: e },
        );
      }
      await writeFileAtomic(this.path, JSON.stringify(this.me), 0o600);
    }
    this.timer = setInterval(() => {
      const now = new Date();
      void utimes(this.path, now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const holder = await this.holder();
    if (holder !== null && holder.pid === this.me.pid && holder.host === this.me.host && holder.startedAt === this.me.startedAt) {
      await unlink(this.path).catch(() => undefined);
    }
  }

  private async holder(): Promise<Owner | null> {
    try {
      const o = JSON.parse(await readFile(this.path, 'utf8')) as Owner;
      return typeof o.pid === 'number' && typeof o.host === 'string' ? o : null;
    } catch {
      return null; // unreadable: a write cut short, nobody's
    }
  }

  private async leftBehind(o: Owner): Promise<boolean> {
    if (o.host === this.me.host) return o.pid === this.me.pid || !running(o.pid);
    const touched = await stat(this.path).then(
      (s) => s.mtimeMs,
      () => 0,
    );
    return Date.now() - touched > STALE_MS;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

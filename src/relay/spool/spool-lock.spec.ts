import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpoolLock } from './spool-lock';

describe('SpoolLock', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'spool-lock-'));
    path = join(dir, 'lock');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const owner = (pid: number, host = hostname()) =>
    writeFileSync(path, JSON.stringify({ pid, host, startedAt: '2026-01-01T00:00:00.000Z' }));

  it('names its owner, and release removes it', async () => {
    const lock = new SpoolLock(path);
    await lock.acquire();
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a spool held by a running process of this host', async () => {
    owner(process.ppid);
    await expect(new SpoolLock(path).acquire()).rejects.toThrow(`in use by pid ${process.ppid} on ${hostname()}`);
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.ppid);
  });

  it('takes over a lock whose process is gone, or that carries its own pid (a container restarted as pid 1)', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid;
    for (const pid of [gone, process.pid]) {
      owner(pid);
      const lock = new SpoolLock(path);
      await lock.acquire();
      expect(JSON.parse(readFileSync(path, 'utf8')).startedAt).not.toBe('2026-01-01T00:00:00.000Z');
      await lock.release();
    }
  });

  it('refuses a fresh lock of another host, takes over one left untouched for 30 s', async () => {
    owner(1, 'other-pod');
    await expect(new SpoolLock(path).acquire()).rejects.toThrow('in use by pid 1 on other-pod');
    const old = new Date(Date.now() - 31_000);
    utimesSync(path, old, old);
    const lock = new SpoolLock(path);
    await lock.acquire();
    await lock.release();
  });

  it('leaves a lock that another sidecar has taken over since', async () => {
    const lock = new SpoolLock(path);
    await lock.acquire();
    owner(process.ppid);
    await lock.release();
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.ppid);
  });
});

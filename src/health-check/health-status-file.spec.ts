import { Logger } from '@nestjs/common';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROBE_SCRIPTS, renderProbeScript } from './probe-scripts';
import { renderStatus, HealthStatusFile } from './health-status-file';

const checkedAt = new Date('2027-01-15T08:00:00.000Z');

describe('renderStatus', () => {
  it("starts with smee-sidecar's two lines for a success", () => {
    const text = renderStatus({ status: 'success', message: 'Health check completed successfully', checkedAt, roundTripMs: 41.6 });

    expect(text).toBe(
      'status=success\nmessage=Health check completed successfully\nchecked_at=2027-01-15T08:00:00.000Z\nround_trip_ms=42\n',
    );
  });

  it('leaves the round trip out when there is none', () => {
    const text = renderStatus({ status: 'failure', message: 'Health check timed out waiting for event round-trip', checkedAt });

    expect(text).toBe('status=failure\nmessage=Health check timed out waiting for event round-trip\nchecked_at=2027-01-15T08:00:00.000Z\n');
  });

  it.each([
    ['\n', 'POST failed:\nconnect ECONNREFUSED', 'POST failed: connect ECONNREFUSED'],
    ['\r\n', 'the server answered 502:\r\nBad Gateway', 'the server answered 502: Bad Gateway'],
    ['runs of them', 'a\n\n\r\nb\rc', 'a b c'],
  ])('folds %s in the message into one line', (_, message, folded) => {
    const lines = renderStatus({ status: 'failure', message, checkedAt }).split('\n');

    expect(lines.slice(0, 2)).toEqual(['status=failure', `message=${folded}`]);
  });

  it('lets no message forge a status line', () => {
    const text = renderStatus({ status: 'failure', message: 'boom\nstatus=success', checkedAt });

    expect(text.split('\n').filter((l) => l.startsWith('status='))).toEqual(['status=failure']);
  });
});

describe('HealthStatusFile', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'status-file-'));
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  function statusFile(path: string, healthFilePath = join(path, 'health-status.txt')): HealthStatusFile {
    return new HealthStatusFile({ path, healthFilePath });
  }

  const mode = (p: string) => statSync(p).mode & 0o777;

  describe('write', () => {
    it('replaces the file with the rendered status, readable by probes in other containers', async () => {
      const sf = statusFile(dir);
      const result = { status: 'success', message: 'Health check completed successfully', checkedAt } as const;

      await expect(sf.write({ status: 'failure', message: 'first', checkedAt })).resolves.toBe(true);
      await expect(sf.write(result)).resolves.toBe(true);

      expect(sf.path).toBe(join(dir, 'health-status.txt'));
      expect(readFileSync(sf.path, 'utf8')).toBe(renderStatus(result));
      expect(mode(sf.path)).toBe(0o644);
      expect(readdirSync(dir)).toEqual(['health-status.txt']);
    });

    it('reports failure instead of throwing', async () => {
      const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      const sf = statusFile(dir, join(dir, 'absent', 'health-status.txt'));

      await expect(sf.write({ status: 'success', message: 'ok', checkedAt })).resolves.toBe(false);
      expect(error).toHaveBeenCalledTimes(1);
    });
  });

  describe('installProbes', () => {
    const expectInstalled = (volume: string, healthFilePath: string) => {
      expect(readdirSync(volume).sort()).toEqual([...PROBE_SCRIPTS].sort());
      for (const name of PROBE_SCRIPTS) {
        expect(readFileSync(join(volume, name), 'utf8')).toBe(renderProbeScript(name, healthFilePath));
        expect(mode(join(volume, name))).toBe(0o555);
      }
    };

    it('creates the volume directory and writes the scripts, mode 0555', async () => {
      const volume = join(dir, 'shared');

      await statusFile(volume).installProbes();

      expectInstalled(volume, join(volume, 'health-status.txt'));
    });

    it.each([0o444, 0o555])('replaces read-only copies (mode %o) left by an earlier container', async (oldMode) => {
      mkdirSync(join(dir, 'shared'));
      const volume = join(dir, 'shared');
      const inodes = new Map<string, number>();
      for (const name of PROBE_SCRIPTS) {
        writeFileSync(join(volume, name), '#!/bin/sh\necho stale copy\n');
        chmodSync(join(volume, name), oldMode);
        inodes.set(name, statSync(join(volume, name)).ino);
      }

      await statusFile(volume, '/elsewhere/health-status.txt').installProbes();

      expectInstalled(volume, '/elsewhere/health-status.txt');
      // A new inode each: replaced by rename, which a non-root sidecar can do in a
      // writable directory, not by writing into the read-only file.
      for (const name of PROBE_SCRIPTS) expect(statSync(join(volume, name)).ino).not.toBe(inodes.get(name));
    });

    it('is idempotent', async () => {
      const sf = statusFile(dir);

      await sf.installProbes();
      await sf.installProbes();

      expectInstalled(dir, join(dir, 'health-status.txt'));
    });
  });
});

import { Injectable } from '@nestjs/common';
import { access, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdminStatus } from '../config/sidecar-config';
import { writeFileAtomic } from '../common/atomic-write';
import { parseStatusFile, STATUS_FILE_READ_LIMIT, StatusFileReading } from './agent-state';

/**
 * The file an operator (or a preStop hook) writes `ready`, `drain` or `maint` into. Read
 * every round, at most its first few KiB: whatever is in it, the answer is a state.
 */
@Injectable()
export class DrainStatusFile {
  async read(path: string): Promise<StatusFileReading> {
    let text: string;
    try {
      const handle = await open(path, 'r');
      try {
        const buffer = Buffer.alloc(STATUS_FILE_READ_LIMIT);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
        text = buffer.subarray(0, bytesRead).toString('utf8');
      } finally {
        await handle.close();
      }
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return { state: 'missing', contents: null, error: 'ENOENT' };
      return { state: 'unreadable', contents: null, error: err.code ?? err.message };
    }
    return parseStatusFile(text);
  }

  /** Writes `state` when there is no file yet; an existing one is the operator's and stays. Returns whether it wrote. */
  async writeIfMissing(path: string, state: AdminStatus): Promise<boolean> {
    try {
      await access(path);
      return false;
    } catch {
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, `${state}\n`);
      return true;
    }
  }
}

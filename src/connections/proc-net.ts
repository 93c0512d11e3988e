import { Injectable } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { InjectSettings } from '../config/settings';
import type { ConnectionsConfig } from '../config/sidecar-config';

export interface TcpTablesText {
  tcp: string;
  tcp6: string;
}

/**
 * The kernel's TCP tables of this network namespace, read from PROC_NET_PATH (tests point
 * it at fixture files). In a pod every container shares the namespace, so the sidecar
 * sees the main container's sockets.
 */
@Injectable()
export class ProcNet {
  readonly dir: string;
  readonly littleEndian = endianness() === 'LE';

  constructor(@InjectSettings('connections') config: ConnectionsConfig) {
    this.dir = config.procNetPath;
  }

  /** Both tables; throws when they cannot be read. */
  async readTables(): Promise<TcpTablesText> {
    const [tcp, tcp6] = await Promise.all([readFile(join(this.dir, 'tcp'), 'utf8'), this.readTcp6()]);
    return { tcp, tcp6 };
  }

  /** A kernel booted with ipv6.disable=1 has no tcp6 table: no IPv6 socket, not a failure. */
  private async readTcp6(): Promise<string> {
    try {
      return await readFile(join(this.dir, 'tcp6'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw e;
    }
  }
}

import { FileHandle, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-write';
import { DeadMeta, decodeRecord, DecodedRecord, EventMeta, recordBytes } from './spool-record';

/** What is listed about a dead letter: never its body or headers. */
export interface DeadLetter {
  id: string;
  seq: number;
  route: string;
  receivedAt: number;
  queuedAt: number;
  deliveryId: string | null;
  dead: DeadMeta;
  bytes: number;
}

/**
 * Events given up on, one file each (`<id>.dead`, the same record encoding as the
 * segments, with the reason in its meta), so that an operator can see, copy or remove
 * them one by one. Each is written whole and synced (temp file, fsync, rename, directory
 * fsync) before its record is finished in the segment log.
 */
export class DeadLetterFolder {
  private readonly letters = new Map<string, DeadLetter>();
  private dirHandle: FileHandle | null = null;
  private bytesOnDisk = 0;

  constructor(private readonly dir: string) {}

  get diskBytes(): number {
    return this.bytesOnDisk;
  }

  get count(): number {
    return this.letters.size;
  }

  /** Loads the folder; leftovers of an interrupted write are removed, unreadable files are set aside as `.damaged`. */
  async open(): Promise<{ damaged: string[] }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.dirHandle = await open(this.dir, 'r');
    const damaged: string[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!name.endsWith('.dead')) continue;
      const bytes = await readFile(path);
      const rec = decodeRecord(bytes);
      if (rec === null || rec.length !== bytes.length || rec.meta.dead === undefined || `${rec.meta.id}.dead` !== name) {
        await rename(path, `${path}.damaged`).catch(() => undefined);
        damaged.push(name);
        continue;
      }
      this.index(rec.meta, bytes.length);
    }
    return { damaged };
  }

  list(): DeadLetter[] {
    return [...this.letters.values()].sort((a, b) => a.seq - b.seq);
  }

  get(id: string): DeadLetter | undefined {
    return this.letters.get(id);
  }

  /** Writes the letter durably (replacing one with the same id) and lists it. */
  async put(meta: EventMeta & { dead: DeadMeta }, body: Buffer): Promise<DeadLetter> {
    const bytes = recordBytes(meta, body);
    await writeFileAtomic(this.path(meta.id), bytes, 0o600);
    await this.dirHandle!.sync();
    const previous = this.letters.get(meta.id);
    if (previous) this.bytesOnDisk -= previous.bytes;
    return this.index(meta, bytes.length);
  }

  async read(id: string): Promise<DecodedRecord> {
    const bytes = await readFile(this.path(id));
    const rec = decodeRecord(bytes);
    if (rec === null) throw new Error(`dead letter ${id} does not check out`);
    return rec;
  }

  /** Unlisted at once, even when the unlink fails (the file is then settled at the next start). */
  async remove(id: string): Promise<void> {
    const letter = this.letters.get(id);
    if (!letter) return;
    this.letters.delete(id);
    this.bytesOnDisk -= letter.bytes;
    await unlink(this.path(id)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async close(): Promise<void> {
    await this.dirHandle?.close().catch(() => undefined);
    this.dirHandle = null;
  }

  private index(meta: EventMeta, bytes: number): DeadLetter {
    const letter: DeadLetter = {
      id: meta.id,
      seq: meta.seq,
      route: meta.route,
      receivedAt: meta.receivedAt,
      queuedAt: meta.queuedAt,
      deliveryId: meta.deliveryId,
      dead: meta.dead!,
      bytes,
    };
    this.letters.set(meta.id, letter);
    this.bytesOnDisk += bytes;
    return letter;
  }

  private path(id: string): string {
    return join(this.dir, `${id}.dead`);
  }
}

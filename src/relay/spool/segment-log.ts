import { Logger } from '@nestjs/common';
import { FileHandle, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ACK_ENTRY_BYTES,
  ByteSource,
  decodeAcks,
  decodeRecord,
  DecodedRecord,
  encodeAck,
  EncodedRecord,
  EventMeta,
  scanSegment,
} from './spool-record';

/**
 * The spool's events on disk: append-only segment files `<n>.log` of records
 * (spool-record.ts), each with an `<n>.ack` file that marks its finished records.
 *
 * Appends are group-committed: records handed in while a write is under way are
 * written together by the next single writev + fdatasync, so concurrent receipts share
 * one sync and an answer is never given before its bytes are on disk. A segment is
 * written by one process only, from its creation to its sealing (size past the roll
 * threshold, a write error, or the end of the process); a restart always starts a new
 * one. A segment whose records are all finished is deleted.
 *
 * Compaction: a sealed segment that holds mostly finished records (an event that keeps
 * being retried pins its whole segment) has its live records copied, byte for byte, to
 * the end of the log; the records' locations then point at the copies and the old segment
 * goes. A crash between the copy and the deletion leaves an event twice, with the same id
 * and seq: recovery keeps one (recovery.ts), and delivery order follows seq, not position.
 */

/**
 * Where a record lies, and which record it is (its seq), for reading it back and for its
 * ack. Segment and offset change when compaction moves the record.
 */
export interface RecordLocation {
  segment: Segment;
  offset: number;
  readonly length: number;
  readonly seq: number;
}

export interface RecoveredRecord<M = EventMeta> {
  location: RecordLocation;
  meta: M;
}

/** What recovery found wrong and dealt with, for the log. */
export interface RecoveryReport {
  segments: number;
  /** Bytes dropped from segment tails (a write the crash cut short) or skipped as damaged. */
  damagedBytes: number;
  damagedSegments: string[];
  deletedSegments: number;
  /** The highest seq of any intact record, finished or not: new records are numbered past it. */
  maxSeq: number;
}

const SEGMENT_NAME = /^(\d{12})\.(log|ack)$/;
const EMPTY = Buffer.alloc(0);

/**
 * When a sealed segment is worth compacting: copying its live records costs writing them
 * again; what comes back is the rest of the file. Normally only a segment that is at least
 * half finished, and sealed a while (records still in flight are about to finish anyway);
 * when space is short, any segment with an eighth or more to give back, at once.
 */
export interface CompactionPolicy {
  /** Largest share of live bytes: 1/2 normally, 7/8 under pressure. */
  maxLiveShare: number;
  /** Sealed at least this long (ms). */
  settleMs: number;
}
export const COMPACT_NORMALLY: CompactionPolicy = { maxLiveShare: 1 / 2, settleMs: 2_000 };
export const COMPACT_UNDER_PRESSURE: CompactionPolicy = { maxLiveShare: 7 / 8, settleMs: 0 };
/** A segment compaction could not empty (a record it could not copy) is left alone this long. */
const COMPACT_RETRY_MS = 60_000;

/** What one compaction moved and gave back. */
export interface Compaction {
  segment: number;
  moved: number;
  movedBytes: number;
  /** The segment's records that could not be moved (unreadable, or the write failed): they stay where they are. */
  left: number;
}

export class Segment {
  /** Records written and not finished, and their bytes. */
  live = 0;
  liveBytes = 0;
  sealed = false;
  /** When it was sealed (performance.now()), and when compaction last moved records out of it. */
  sealedAt = 0;
  compactedAt = -Infinity;
  ackHandle: FileHandle | null = null;
  ackBytes = 0;
  ackDirty = false;
  pendingAcks: Buffer[] = [];
  deleted = false;
  deleting: Promise<void> | null = null;

  constructor(
    readonly number: number,
    readonly logPath: string,
    readonly ackPath: string,
    public handle: FileHandle,
    public size: number,
  ) {}
}

interface PendingAppend {
  record: EncodedRecord;
  seq: number;
  resolve: (l: RecordLocation) => void;
  reject: (e: Error) => void;
}

/** Fault injection for tests: called between the steps of a batch write. */
export type WriteStep = 'write' | 'sync';

export class SegmentLog {
  private readonly logger = new Logger('Spool');
  private readonly segments = new Map<number, Segment>();
  private active: Segment | null = null;
  private lastNumber = 0;
  private dirHandle: FileHandle | null = null;
  private queue: PendingAppend[] = [];
  private writing: Promise<void> | null = null;
  private tidying: Promise<void> | null = null;
  private compacting: Promise<unknown> | null = null;
  private ackSyncTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private bytesOnDisk = 0;
  /** Tests set this to make a step fail. */
  beforeStep: ((step: WriteStep) => void) | null = null;

  constructor(
    private readonly dir: string,
    /** A segment is sealed once it is this large; a fresh one takes the next record. */
    private readonly rollBytes: number,
    /** How often written acks are synced (they survive a process crash at once; this bounds what a power loss can undo). */
    private readonly ackSyncMs = 1000,
    /** Recovery reads segments through a window this large (a larger record gets its own), not whole files. */
    private readonly readWindowBytes = 1024 * 1024,
  ) {}

  /** Bytes of every segment and ack file. */
  get diskBytes(): number {
    return this.bytesOnDisk;
  }

  get segmentCount(): number {
    return this.segments.size;
  }

  /**
   * Opens the directory and returns every intact, unfinished record, oldest segment
   * first. Torn tails are cut off; segments with nothing left are deleted. `keep` reduces
   * each record's meta to what the caller holds on to, so that a large spool is not held
   * in memory as whole metas while it is read.
   */
  async recover<M = EventMeta>(
    keep: (meta: EventMeta) => M = (m) => m as M,
  ): Promise<{ records: RecoveredRecord<M>[]; report: RecoveryReport }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.dirHandle = await open(this.dir, 'r');
    const logs = new Set<number>();
    const acks = new Set<number>();
    for (const name of await readdir(this.dir)) {
      const m = SEGMENT_NAME.exec(name);
      if (!m) continue;
      const n = Number(m[1]);
      (m[2] === 'log' ? logs : acks).add(n);
      this.lastNumber = Math.max(this.lastNumber, n);
    }
    const report: RecoveryReport = { segments: 0, damagedBytes: 0, damagedSegments: [], deletedSegments: 0, maxSeq: 0 };
    const records: RecoveredRecord<M>[] = [];
    for (const n of [...logs].sort((a, b) => a - b)) {
      const logPath = this.path(n, 'log');
      const ackPath = this.path(n, 'ack');
      const handle = await open(logPath, 'r+');
      const size = (await handle.stat()).size;
      const scan = await scanSegment(new FileWindow(handle, size, this.readWindowBytes));
      const acked = acks.has(n) ? decodeAcks(await readFile(ackPath)) : new Map<number, number>();
      if (scan.damaged.length > 0) {
        report.damagedBytes += scan.damaged.reduce((s, d) => s + d.length, 0);
        report.damagedSegments.push(`${String(n).padStart(12, '0')}.log`);
      }
      if (scan.validEnd < size) {
        await handle.truncate(scan.validEnd);
        await handle.datasync();
      }
      const segment = new Segment(n, logPath, ackPath, handle, scan.validEnd);
      segment.sealed = true;
      segment.sealedAt = performance.now();
      segment.ackBytes = acks.has(n) ? (await stat(ackPath)).size : 0;
      this.segments.set(n, segment);
      this.bytesOnDisk += segment.size + segment.ackBytes;
      for (const r of scan.records) {
        report.maxSeq = Math.max(report.maxSeq, r.meta.seq);
        if (acked.get(r.offset) === r.meta.seq) continue;
        segment.live++;
        segment.liveBytes += r.length;
        records.push({ location: { segment, offset: r.offset, length: r.length, seq: r.meta.seq }, meta: keep(r.meta) });
      }
      report.segments++;
      if (segment.live === 0) {
        await this.delete(segment);
        report.deletedSegments++;
      }
    }
    for (const n of acks) {
      if (!logs.has(n)) await unlink(this.path(n, 'ack')).catch(() => undefined);
    }
    return { records, report };
  }

  /** Appends a record; resolves once it is on disk (synced), with where it lies. */
  append(record: EncodedRecord, seq: number): Promise<RecordLocation> {
    if (this.closed) return Promise.reject(new Error('the spool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ record, seq, resolve, reject });
      this.writing ??= this.writeQueued();
    });
  }

  /** Reads a record back and checks it again: a record damaged on disk since is never delivered. */
  async read(loc: RecordLocation): Promise<DecodedRecord> {
    return (await this.readChecked(loc)).record;
  }

  private async readChecked(loc: RecordLocation): Promise<{ bytes: Buffer; record: DecodedRecord }> {
    const { segment, offset, length } = loc;
    const bytes = Buffer.allocUnsafe(length);
    const { bytesRead } = await segment.handle.read(bytes, 0, length, offset);
    const record = bytesRead === length ? decodeRecord(bytes, 0) : null;
    if (record === null || record.length !== length || record.meta.seq !== loc.seq) {
      throw new Error(`record at ${segment.logPath}:${offset} does not check out`);
    }
    return { bytes, record };
  }

  /**
   * Marks a record finished. The ack is written soon after (a process crash cannot undo
   * a written ack; its sync is batched), and a sealed segment with nothing live left
   * is deleted.
   */
  finish(loc: RecordLocation): void {
    if (this.closed) return; // stays unfinished on disk: delivered again after the restart
    const seg = loc.segment;
    seg.live--;
    seg.liveBytes -= loc.length;
    seg.pendingAcks.push(encodeAck(loc.offset, loc.seq));
    void this.tidy();
  }

  /**
   * Under space pressure, a current segment whose records are all finished is only
   * taking room: seal it so that it goes, and let the next record start a new one.
   */
  async releaseIdle(): Promise<void> {
    await this.writing;
    const seg = this.active;
    if (seg === null || seg.live > 0 || this.queue.length > 0 || this.writing !== null) return;
    this.seal(seg);
    await this.tidy();
  }

  /** The sealed segments worth compacting now under `policy`, sparsest first. */
  compactable(policy: CompactionPolicy, now = performance.now()): Segment[] {
    const found: Segment[] = [];
    for (const seg of this.segments.values()) {
      if (!seg.sealed || seg.deleted || seg.live === 0 || seg.size === 0) continue;
      if (now - seg.sealedAt < policy.settleMs || now - seg.compactedAt < COMPACT_RETRY_MS) continue;
      if (seg.liveBytes / seg.size <= policy.maxLiveShare) found.push(seg);
    }
    return found.sort((a, b) => a.liveBytes / a.size - b.liveBytes / b.size);
  }

  /**
   * Moves the given live records of `segment` to the end of the log: each is read and
   * checked, the copies are appended together (one sync), then each location is pointed
   * at its copy, and the segment, left with nothing live, is deleted. `isLive` is asked
   * once the copies are on disk: a record finished meanwhile has its copy finished too.
   * Records passed in must be every live record of the segment for it to go.
   */
  compact(segment: Segment, records: readonly RecordLocation[], isLive: (r: RecordLocation) => boolean): Promise<Compaction> {
    if (this.compacting !== null) return Promise.reject(new Error('a compaction is under way'));
    const run = this.moveOut(segment, records, isLive);
    this.compacting = run.finally(() => (this.compacting = null));
    return run;
  }

  private async moveOut(segment: Segment, records: readonly RecordLocation[], isLive: (r: RecordLocation) => boolean): Promise<Compaction> {
    segment.compactedAt = performance.now();
    const result: Compaction = { segment: segment.number, moved: 0, movedBytes: 0, left: 0 };
    const read: Array<{ r: RecordLocation; bytes: Buffer }> = [];
    for (const r of records) {
      if (r.segment !== segment || !isLive(r)) continue;
      try {
        read.push({ r, bytes: (await this.readChecked(r)).bytes });
      } catch {
        result.left++;
      }
    }
    // Handed to the log together, so that they share a write and a sync.
    const copies = read
      .filter(({ r }) => r.segment === segment && isLive(r))
      .map(({ r, bytes }) => ({ r, written: this.append({ head: bytes, body: EMPTY, length: bytes.length }, r.seq) }));
    for (const { r, written } of copies) {
      let copy: RecordLocation;
      try {
        copy = await written;
      } catch {
        result.left++;
        continue;
      }
      if (r.segment !== segment || !isLive(r)) {
        this.finish(copy);
        continue;
      }
      // The old place is finished like a delivered record (after the copy is synced): if the
      // segment outlives this (a neighbour that could not be moved, a failed unlink), a
      // restart must not find the event there still waiting.
      segment.live--;
      segment.liveBytes -= r.length;
      segment.pendingAcks.push(encodeAck(r.offset, r.seq));
      r.segment = copy.segment;
      r.offset = copy.offset;
      result.moved++;
      result.movedBytes += r.length;
    }
    await this.tidy();
    return result;
  }

  /** Waits for queued appends and acks, syncs, closes every file. Appends after this are refused. */
  async close(): Promise<void> {
    // A compaction under way finishes first: the copy of a record finished meanwhile must
    // be finished too, which a closed log would no longer do.
    await this.compacting?.catch(() => undefined);
    this.closed = true;
    await this.writing;
    // A current segment with nothing live goes now rather than at the next start.
    if (this.active !== null) this.seal(this.active);
    while (this.tidying !== null || this.hasTidyWork()) await this.tidy();
    if (this.ackSyncTimer) clearTimeout(this.ackSyncTimer);
    this.ackSyncTimer = null;
    for (const seg of this.segments.values()) {
      if (seg.ackHandle) {
        await seg.ackHandle.datasync().catch(() => undefined);
        await seg.ackHandle.close().catch(() => undefined);
        seg.ackHandle = null;
      }
      await seg.handle.close().catch(() => undefined);
    }
    await this.dirHandle?.close().catch(() => undefined);
    this.dirHandle = null;
  }

  private async writeQueued(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      await this.writeBatch(batch);
    }
    this.writing = null;
  }

  private async writeBatch(batch: PendingAppend[]): Promise<void> {
    let seg: Segment;
    try {
      seg = this.active ?? (await this.createSegment());
    } catch (e) {
      for (const p of batch) p.reject(e as Error);
      return;
    }
    const start = seg.size;
    const buffers: Buffer[] = [];
    let total = 0;
    for (const p of batch) {
      buffers.push(p.record.head);
      if (p.record.body.length > 0) buffers.push(p.record.body);
      total += p.record.length;
    }
    try {
      this.beforeStep?.('write');
      const { bytesWritten } = await seg.handle.writev(buffers, start);
      if (bytesWritten !== total) throw new Error(`short write to ${seg.logPath} (${bytesWritten} of ${total} bytes)`);
      this.beforeStep?.('sync');
      await seg.handle.datasync();
    } catch (e) {
      // Nobody was answered for this batch: cut it off, so that it cannot come back at
      // recovery, and leave a file that had trouble for a fresh one.
      await seg.handle
        .truncate(start)
        .then(() => seg.handle.datasync())
        .catch(() => undefined);
      this.seal(seg);
      for (const p of batch) p.reject(e as Error);
      return;
    }
    let offset = start;
    seg.size = start + total;
    seg.live += batch.length;
    seg.liveBytes += total;
    this.bytesOnDisk += total;
    for (const p of batch) {
      p.resolve({ segment: seg, offset, length: p.record.length, seq: p.seq });
      offset += p.record.length;
    }
    if (seg.size >= this.rollBytes) this.seal(seg);
  }

  private async createSegment(): Promise<Segment> {
    const n = ++this.lastNumber;
    const handle = await open(this.path(n, 'log'), 'wx+', 0o600);
    // The new name must be on disk before anything in the file is acknowledged.
    await this.dirHandle!.sync();
    const seg = new Segment(n, this.path(n, 'log'), this.path(n, 'ack'), handle, 0);
    this.segments.set(n, seg);
    this.active = seg;
    return seg;
  }

  private seal(seg: Segment): void {
    seg.sealed = true;
    seg.sealedAt = performance.now();
    if (this.active === seg) this.active = null;
    if (seg.live === 0) void this.tidy();
  }

  /**
   * Writes pending acks and deletes sealed segments with nothing live, one pass after
   * another until there is nothing to do. The run is forgotten only once it has settled
   * (a run with nothing to do ends synchronously, and resetting inside it would leave a
   * finished promise in place for good); work that came in after its last pass starts the
   * next run.
   */
  private tidy(): Promise<void> {
    return (this.tidying ??= this.runTidy().finally(() => {
      this.tidying = null;
      if (this.hasTidyWork()) void this.tidy();
    }));
  }

  private hasTidyWork(): boolean {
    for (const seg of this.segments.values()) {
      if (seg.pendingAcks.length > 0 || (seg.sealed && seg.live === 0 && !seg.deleted)) return true;
    }
    return false;
  }

  private async runTidy(): Promise<void> {
    for (let worked = true; worked;) {
      worked = false;
      for (const seg of [...this.segments.values()]) {
        if (seg.pendingAcks.length > 0) {
          worked = true;
          await this.writeAcks(seg);
        }
        if (seg.sealed && seg.live === 0 && seg.pendingAcks.length === 0 && !seg.deleted) {
          worked = true;
          await this.delete(seg).catch((e: Error) =>
            this.logger.warn({
              msg: 'deleting a finished segment failed; the next start deletes it',
              file: seg.logPath,
              reason: e.message,
            }),
          );
        }
      }
    }
    if (this.ackSyncTimer === null && !this.closed) {
      this.ackSyncTimer = setTimeout(() => void this.syncAcks(), this.ackSyncMs);
      this.ackSyncTimer.unref();
    }
  }

  private async writeAcks(seg: Segment): Promise<void> {
    const entries = Buffer.concat(seg.pendingAcks, seg.pendingAcks.length * ACK_ENTRY_BYTES);
    seg.pendingAcks = [];
    try {
      seg.ackHandle ??= await open(seg.ackPath, 'a', 0o600);
      await seg.ackHandle.write(entries);
      seg.ackBytes += entries.length;
      this.bytesOnDisk += entries.length;
      seg.ackDirty = true;
    } catch (e) {
      // The records stay unfinished on disk: after a restart they are delivered again (at least once).
      this.logger.warn({
        msg: 'writing acks failed: these events will be delivered again after a restart',
        file: seg.ackPath,
        events: entries.length / ACK_ENTRY_BYTES,
        reason: (e as Error).message,
      });
    }
  }

  private async syncAcks(): Promise<void> {
    this.ackSyncTimer = null;
    for (const seg of this.segments.values()) {
      if (!seg.ackDirty || seg.ackHandle === null) continue;
      seg.ackDirty = false;
      await seg.ackHandle.datasync().catch(() => undefined);
    }
  }

  /** The log goes first (with a directory sync), then its acks: never acks gone while their records remain. */
  private delete(seg: Segment): Promise<void> {
    return (seg.deleting ??= this.unlinkSegment(seg));
  }

  private async unlinkSegment(seg: Segment): Promise<void> {
    this.segments.delete(seg.number);
    if (this.active === seg) this.active = null;
    await seg.handle.close().catch(() => undefined);
    if (seg.ackHandle) await seg.ackHandle.close().catch(() => undefined);
    seg.ackHandle = null;
    seg.deleted = true;
    this.bytesOnDisk -= seg.size + seg.ackBytes;
    await unlink(seg.logPath);
    await this.dirHandle?.sync();
    await unlink(seg.ackPath).catch(() => undefined);
  }

  private path(n: number, kind: 'log' | 'ack'): string {
    return join(this.dir, `${String(n).padStart(12, '0')}.${kind}`);
  }
}

/** A segment file read through one reused buffer, so that recovery holds a window of it, not all of it. */
class FileWindow implements ByteSource {
  private buf: Buffer;
  private start = 0;
  private end = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    window: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.min(window, Math.max(size, 1)));
  }

  async bytes(offset: number, length: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(length, this.size - offset));
    if (offset >= this.start && offset + want <= this.end) return this.buf.subarray(offset - this.start, offset - this.start + want);
    if (want > this.buf.length) this.buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await this.handle.read(this.buf, 0, Math.min(this.buf.length, this.size - offset), offset);
    this.start = offset;
    this.end = offset + bytesRead;
    return this.buf.subarray(0, Math.min(want, bytesRead));
  }
}

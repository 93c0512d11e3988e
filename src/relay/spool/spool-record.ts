import { crc32 } from 'node:zlib';

/**
 * One spooled event as it lies on disk, in a segment file or a dead-letter file:
 *
 *   offset  size  field
 *   0       4     magic "SPL1"
 *   4       4     CRC-32 of every byte from offset 8 to the end of the record
 *   8       4     length of what follows the 12-byte header: 4 + meta length + body length
 *   12      4     meta length
 *   16      m     meta, UTF-8 JSON (EventMeta)
 *   16+m    b     body, the bytes exactly as they arrived
 *
 * The checksum covers the length fields, so a torn or flipped length is caught like any
 * other damage. Integers are big-endian.
 */
export const RECORD_MAGIC = Buffer.from('SPL1', 'latin1');
export const RECORD_HEADER_BYTES = 16;
const MAX_PAYLOAD = 0xffff_ffff;

/** What the spool keeps about an event besides its body. Headers are end-to-end only (hop-by-hop ones were dropped at receipt). */
export interface EventMeta {
  /** The id the sender got in the 202 answer. */
  id: string;
  /** Arrival order over the whole spool; delivery order per destination follows it. */
  seq: number;
  method: string;
  /** Path and query as the request line had them. */
  url: string;
  /** Flat [name, value, ...] list, names as they came. */
  headers: string[];
  /** The address of the peer that sent it, for X-Forwarded-For. */
  client: string | null;
  /** When it was received (ms since the epoch). */
  receivedAt: number;
  /** When it was (re)queued: receipt, or a requeue of a dead letter. The retry deadline counts from here. */
  queuedAt: number;
  /** The dispatch rule chosen at receipt (`default` without rules); the destination is looked up by it at delivery. */
  route: string;
  /** The value of the duplicate-detection header, when there was one. */
  deliveryId: string | null;
  /** Only in dead-letter files: why and when delivery was given up. */
  dead?: DeadMeta;
}

export interface DeadMeta {
  at: number;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
}

/** The encoded record: header and meta in one buffer, the body as its own (no copy of it is made). */
export interface EncodedRecord {
  head: Buffer;
  body: Buffer;
  length: number;
}

export function encodeRecord(meta: EventMeta, body: Buffer): EncodedRecord {
  const metaText = Buffer.from(JSON.stringify(meta), 'utf8');
  const payload = 4 + metaText.length + body.length;
  if (payload > MAX_PAYLOAD) throw new RangeError(`record of ${payload} bytes is over the format's limit`);
  const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES + metaText.length);
  RECORD_MAGIC.copy(head, 0);
  head.writeUInt32BE(payload, 8);
  head.writeUInt32BE(metaText.length, 12);
  metaText.copy(head, 16);
  let crc = crc32(head.subarray(8));
  crc = crc32(body, crc);
  head.writeUInt32BE(crc, 4);
  return { head, body, length: head.length + body.length };
}

/** The record as one buffer, for files written whole (dead letters, tests). */
export function recordBytes(meta: EventMeta, body: Buffer): Buffer {
  const r = encodeRecord(meta, body);
  return Buffer.concat([r.head, r.body], r.length);
}

export interface DecodedRecord {
  meta: EventMeta;
  body: Buffer;
}

/** Decodes the record that starts at `offset`, or null when it is incomplete, damaged or not a record. The body is a view into `buf`. */
export function decodeRecord(buf: Buffer, offset = 0): (DecodedRecord & { length: number }) | null {
  if (buf.length - offset < RECORD_HEADER_BYTES) return null;
  if (buf.compare(RECORD_MAGIC, 0, 4, offset, offset + 4) !== 0) return null;
  const payload = buf.readUInt32BE(offset + 8);
  const end = offset + 12 + payload;
  if (payload < 4 || end > buf.length) return null;
  if (crc32(buf.subarray(offset + 8, end)) !== buf.readUInt32BE(offset + 4)) return null;
  const metaLength = buf.readUInt32BE(offset + 12);
  if (metaLength > payload - 4) return null;
  const meta = parseMeta(buf.toString('utf8', offset + 16, offset + 16 + metaLength));
  if (meta === null) return null;
  return { meta, body: buf.subarray(offset + 16 + metaLength, end), length: end - offset };
}

export interface SegmentScan {
  /** Whole, intact records in file order. */
  records: Array<{ offset: number; length: number; meta: EventMeta }>;
  /** Byte ranges that hold no intact record: torn writes, damage. */
  damaged: Array<{ offset: number; length: number }>;
  /** End of the last intact record: everything after it can go. */
  validEnd: number;
}

/** Random access to a segment's bytes: a buffer in tests, a window over the file at recovery. */
export interface ByteSource {
  readonly size: number;
  /**
   * Up to `length` bytes from `offset` (fewer at the end). The view may be reused by the
   * next call: nothing of it is kept.
   */
  bytes(offset: number, length: number): Promise<Buffer>;
}

export function bufferSource(buf: Buffer): ByteSource {
  return { size: buf.length, bytes: (offset, length) => Promise.resolve(buf.subarray(offset, Math.min(buf.length, offset + length))) };
}

/**
 * Walks a segment's bytes record by record; nothing that fails its checksum is
 * returned. A crash can only tear the tail (each batch is written after the one before
 * it is synced), and the tail is dropped. A damaged record further in is skipped only
 * when its length field leads exactly to the next intact record; otherwise the rest of
 * the file is dropped. It never hunts for the next "SPL1" in the bytes: an event's body
 * may itself contain a well-formed record, and that must never come back as an event.
 */
export async function scanSegment(src: ByteSource): Promise<SegmentScan> {
  const records: SegmentScan['records'] = [];
  const damaged: SegmentScan['damaged'] = [];
  let offset = 0;
  let validEnd = 0;
  while (offset < src.size) {
    const rec = await recordAt(src, offset);
    if (rec !== null) {
      records.push({ offset, length: rec.length, meta: rec.meta });
      offset += rec.length;
      validEnd = offset;
      continue;
    }
    const end = (await skippableTo(src, offset)) ?? src.size;
    damaged.push({ offset, length: end - offset });
    offset = end;
  }
  return { records, damaged, validEnd };
}

async function recordAt(src: ByteSource, offset: number): Promise<(DecodedRecord & { length: number }) | null> {
  const total = await claimedLength(src, offset);
  if (total === null || offset + total > src.size) return null;
  return decodeRecord(await src.bytes(offset, total), 0);
}

/** The length the header at `offset` claims for its record, when the header is whole and starts with the magic. */
async function claimedLength(src: ByteSource, offset: number): Promise<number | null> {
  const head = await src.bytes(offset, RECORD_HEADER_BYTES);
  if (head.length < RECORD_HEADER_BYTES || head.compare(RECORD_MAGIC, 0, 4, 0, 4) !== 0) return null;
  return 12 + head.readUInt32BE(8);
}

/** Where the record at `offset` would end, when its header is whole and an intact record starts right there. */
async function skippableTo(src: ByteSource, offset: number): Promise<number | null> {
  const total = await claimedLength(src, offset);
  if (total === null || offset + total >= src.size) return null;
  return (await recordAt(src, offset + total)) !== null ? offset + total : null;
}

function parseMeta(text: string): EventMeta | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== 'object' || m === null) return null;
  const e = m as Record<string, unknown>;
  const ok =
    typeof e.id === 'string' &&
    typeof e.seq === 'number' &&
    typeof e.method === 'string' &&
    typeof e.url === 'string' &&
    Array.isArray(e.headers) &&
    e.headers.length % 2 === 0 &&
    e.headers.every((h) => typeof h === 'string') &&
    (e.client === null || typeof e.client === 'string') &&
    typeof e.receivedAt === 'number' &&
    typeof e.queuedAt === 'number' &&
    typeof e.route === 'string' &&
    (e.deliveryId === null || typeof e.deliveryId === 'string');
  return ok ? (e as unknown as EventMeta) : null;
}

/**
 * Ack entries mark a segment's records as finished (delivered or moved to the dead
 * letters). An entry is the record's offset and its seq, with a checksum, 16 bytes: an
 * entry that does not name an intact record exactly is ignored, so neither a torn
 * entry nor a stale one can finish a record it was not written for.
 */
export const ACK_ENTRY_BYTES = 16;

export function encodeAck(offset: number, seq: number, into: Buffer = Buffer.allocUnsafe(ACK_ENTRY_BYTES), at = 0): Buffer {
  into.writeUInt32BE(offset, at);
  into.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), at + 4);
  into.writeUInt32BE(seq >>> 0, at + 8);
  into.writeUInt32BE(crc32(into.subarray(at, at + 12)), at + 12);
  return into;
}

/** The intact entries of an ack file as `offset → seq`; a torn last entry and damaged ones are skipped. */
export function decodeAcks(buf: Buffer): Map<number, number> {
  const acks = new Map<number, number>();
  for (let at = 0; at + ACK_ENTRY_BYTES <= buf.length; at += ACK_ENTRY_BYTES) {
    if (crc32(buf.subarray(at, at + 12)) !== buf.readUInt32BE(at + 12)) continue;
    acks.set(buf.readUInt32BE(at), buf.readUInt32BE(at + 4) * 0x1_0000_0000 + buf.readUInt32BE(at + 8));
  }
  return acks;
}

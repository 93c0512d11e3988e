/**
 * Protobuf encoding of the remote-write 1.0 `WriteRequest` (prometheus/prompb types.proto
 * and remote.proto). Only the messages and fields that 1.0 senders use are written:
 *
 *   WriteRequest   { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
 *   TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2; }
 *   Label          { string name = 1; string value = 2; }
 *   Sample         { double value = 1; int64 timestamp = 2; }
 *   MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
 *
 * Hand-written because it is this small: sizes are computed first, then everything is
 * written into one buffer, with no intermediate objects per field. String lengths are
 * counted and ASCII is copied in JS: a native call per label string (Buffer.byteLength,
 * buf.write) costs more than the string itself at these sizes (measured: 10,000 series
 * encode in a fraction of the time).
 */

export interface Label {
  name: string;
  value: string;
}

export interface Sample {
  value: number;
  /** Milliseconds since the Unix epoch. */
  timestampMs: number;
  /**
   * A staleness marker: the series has ended (its target went away, or it is no longer
   * exposed). Written as Prometheus's stale NaN, 0x7ff0000000000002, in place of `value`;
   * a NaN's payload bits do not survive JavaScript numbers, so it is its own flag.
   */
  stale?: true;
}

/** The bytes of Prometheus's stale NaN (value.StaleNaN), little-endian as a protobuf double. */
export const STALE_NAN_BYTES: Readonly<Buffer> = Buffer.from([0x02, 0, 0, 0, 0, 0, 0xf0, 0x7f]);

export interface TimeSeries {
  /** Sorted by name, names unique, values non-empty, `__name__` among them. */
  labels: Label[];
  /** In timestamp order. */
  samples: Sample[];
}

/** prompb MetricMetadata.MetricType. */
export const METRIC_TYPES = {
  unknown: 0,
  counter: 1,
  gauge: 2,
  summary: 3,
  histogram: 4,
  gaugehistogram: 5,
  info: 6,
  stateset: 7,
} as const;
export type MetricType = keyof typeof METRIC_TYPES;

export interface MetricMetadata {
  type: MetricType;
  family: string;
  help: string;
  unit?: string;
}

export interface WriteRequest {
  timeseries: TimeSeries[];
  metadata: MetricMetadata[];
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;

const tag = (field: number, wire: number) => (field << 3) | wire;

/** Bytes of an unsigned varint; values up to 2^53 (millisecond timestamps need more than 32 bits). */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

const bytesField = (len: number) => 1 + varintSize(len) + len;

class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(n: number): void {
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  /** int64 as protobuf writes it: negative values as their 64-bit two's complement, 10 bytes. */
  int64(n: number): void {
    if (n >= 0) return this.varint(n);
    const big = BigInt.asUintN(64, BigInt(n));
    let v = big;
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  string(field: number, s: string, len: number): void {
    this.buf[this.pos++] = tag(field, WIRE_BYTES);
    this.varint(len);
    if (len === s.length) {
      // Pure ASCII (the UTF-8 length equals the UTF-16 length only then).
      for (let i = 0; i < len; i++) this.buf[this.pos++] = s.charCodeAt(i);
    } else {
      this.pos += this.buf.write(s, this.pos, 'utf8');
    }
  }

  header(field: number, len: number): void {
    this.buf[this.pos++] = tag(field, WIRE_BYTES);
    this.varint(len);
  }
}

const int64Size = (n: number) => (n >= 0 ? varintSize(n) : 10);

/** UTF-8 byte length of a JS string; a lone surrogate counts 3 bytes, as its replacement character is written. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // four bytes for the pair's two UTF-16 units
      i++;
    } else n += 2;
  }
  return n;
}

function sampleSize(s: Sample): number {
  return 1 + 8 + 1 + int64Size(s.timestampMs);
}

function metadataSize(m: MetricMetadata): number {
  let size = 0;
  if (METRIC_TYPES[m.type] !== 0) size += 1 + varintSize(METRIC_TYPES[m.type]);
  size += bytesField(utf8Length(m.family));
  if (m.help) size += bytesField(utf8Length(m.help));
  if (m.unit) size += bytesField(utf8Length(m.unit));
  return size;
}

/** The serialised `WriteRequest`, ready for snappy. */
export function encodeWriteRequest(req: WriteRequest): Buffer {
  // First pass: every string's UTF-8 length, in writing order, and each series' size.
  let labelCount = 0;
  for (const ts of req.timeseries) labelCount += ts.labels.length;
  const strLens = new Uint32Array(labelCount * 2);
  const seriesSizes = new Array<number>(req.timeseries.length);
  let k = 0;
  let total = 0;
  for (let i = 0; i < req.timeseries.length; i++) {
    const ts = req.timeseries[i];
    let size = 0;
    for (const l of ts.labels) {
      const nameLen = (strLens[k++] = utf8Length(l.name));
      const valueLen = (strLens[k++] = utf8Length(l.value));
      size += bytesField(bytesField(nameLen) + bytesField(valueLen));
    }
    for (const s of ts.samples) size += bytesField(sampleSize(s));
    seriesSizes[i] = size;
    total += bytesField(size);
  }
  const metaSizes = req.metadata.map(metadataSize);
  for (const s of metaSizes) total += bytesField(s);

  const w = new Writer(total);
  k = 0;
  for (let i = 0; i < req.timeseries.length; i++) {
    const ts = req.timeseries[i];
    w.header(1, seriesSizes[i]);
    for (const l of ts.labels) {
      const nameLen = strLens[k++];
      const valueLen = strLens[k++];
      w.header(1, bytesField(nameLen) + bytesField(valueLen));
      w.string(1, l.name, nameLen);
      w.string(2, l.value, valueLen);
    }
    for (const s of ts.samples) {
      w.header(2, sampleSize(s));
      w.buf[w.pos++] = tag(1, WIRE_FIXED64);
      if (s.stale) w.pos += STALE_NAN_BYTES.copy(w.buf, w.pos);
      else w.pos = w.buf.writeDoubleLE(s.value, w.pos);
      w.buf[w.pos++] = tag(2, WIRE_VARINT);
      w.int64(s.timestampMs);
    }
  }
  req.metadata.forEach((m, i) => {
    w.header(3, metaSizes[i]);
    const type = METRIC_TYPES[m.type];
    if (type !== 0) {
      w.buf[w.pos++] = tag(1, WIRE_VARINT);
      w.varint(type);
    }
    w.string(2, m.family, utf8Length(m.family));
    if (m.help) w.string(4, m.help, utf8Length(m.help));
    if (m.unit) w.string(5, m.unit, utf8Length(m.unit));
  });
  if (w.pos !== total) throw new Error(`remote-write encoding wrote ${w.pos} bytes, expected ${total}`);
  return w.buf;
}

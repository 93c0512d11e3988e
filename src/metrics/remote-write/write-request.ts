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
 * written into one buffer, with no intermediate objects per field.
 */

export interface Label {
  name: string;
  value: string;
}

export interface Sample {
  value: number;
  /** Milliseconds since the Unix epoch. */
  timestampMs: number;
}

export interface TimeSeries {
  /** Sorted by name, names unique, values non-empty, `__name__` among them. */
  labels: Label[];
  /** In timestamp order. */
  samples: Sample[];
}

/** prompb MetricMetadata.MetricType. */
export const METRIC_TYPES = { unknown: 0, counter: 1, gauge: 2, summary: 3, histogram: 4, gaugehistogram: 5, info: 6, stateset: 7 } as const;
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
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  header(field: number, len: number): void {
    this.buf[this.pos++] = tag(field, WIRE_BYTES);
    this.varint(len);
  }
}

const int64Size = (n: number) => (n >= 0 ? varintSize(n) : 10);

function labelSize(l: Label): number {
  return bytesField(Buffer.byteLength(l.name)) + bytesField(Buffer.byteLength(l.value));
}

function sampleSize(s: Sample): number {
  return 1 + 8 + 1 + int64Size(s.timestampMs);
}

function seriesSize(ts: TimeSeries): number {
  let size = 0;
  for (const l of ts.labels) size += bytesField(labelSize(l));
  for (const s of ts.samples) size += bytesField(sampleSize(s));
  return size;
}

function metadataSize(m: MetricMetadata): number {
  let size = 0;
  if (METRIC_TYPES[m.type] !== 0) size += 1 + varintSize(METRIC_TYPES[m.type]);
  size += bytesField(Buffer.byteLength(m.family));
  if (m.help) size += bytesField(Buffer.byteLength(m.help));
  if (m.unit) size += bytesField(Buffer.byteLength(m.unit));
  return size;
}

/** The serialised `WriteRequest`, ready for snappy. */
export function encodeWriteRequest(req: WriteRequest): Buffer {
  const seriesSizes = req.timeseries.map(seriesSize);
  const metaSizes = req.metadata.map(metadataSize);
  let total = 0;
  for (const s of seriesSizes) total += bytesField(s);
  for (const s of metaSizes) total += bytesField(s);

  const w = new Writer(total);
  req.timeseries.forEach((ts, i) => {
    w.header(1, seriesSizes[i]);
    for (const l of ts.labels) {
      const nameLen = Buffer.byteLength(l.name);
      const valueLen = Buffer.byteLength(l.value);
      w.header(1, bytesField(nameLen) + bytesField(valueLen));
      w.string(1, l.name, nameLen);
      w.string(2, l.value, valueLen);
    }
    for (const s of ts.samples) {
      w.header(2, sampleSize(s));
      w.buf[w.pos++] = tag(1, WIRE_FIXED64);
      w.pos = w.buf.writeDoubleLE(s.value, w.pos);
      w.buf[w.pos++] = tag(2, WIRE_VARINT);
      w.int64(s.timestampMs);
    }
  });
  req.metadata.forEach((m, i) => {
    w.header(3, metaSizes[i]);
    const type = METRIC_TYPES[m.type];
    if (type !== 0) {
      w.buf[w.pos++] = tag(1, WIRE_VARINT);
      w.varint(type);
    }
    w.string(2, m.family, Buffer.byteLength(m.family));
    if (m.help) w.string(4, m.help, Buffer.byteLength(m.help));
    if (m.unit) w.string(5, m.unit, Buffer.byteLength(m.unit));
  });
  if (w.pos !== total) throw new Error(`remote-write encoding wrote ${w.pos} bytes, expected ${total}`);
  return w.buf;
}

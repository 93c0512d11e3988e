/**
 * A protobuf reader for remote-write `WriteRequest`s, for tests: written from the wire
 * format (not from the encoder) so that it can catch the encoder's mistakes. Unknown
 * fields are skipped as any protobuf reader must; a malformed buffer throws.
 */

export interface DecodedSeries {
  labels: Array<[string, string]>;
  samples: Array<{ value: number; timestampMs: number; stale?: true }>;
}

export interface DecodedMetadata {
  type: number;
  family: string;
  help: string;
  unit: string;
}

export interface DecodedWriteRequest {
  timeseries: DecodedSeries[];
  metadata: DecodedMetadata[];
}

class Reader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly end = buf.length,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  }

  key(): { field: number; wire: number } {
    const k = Number(this.varint());
    return { field: k >>> 3, wire: k & 7 };
  }

  bytes(): Uint8Array {
    const len = Number(this.varint());
    if (this.pos + len > this.end) throw new Error('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  string(): string {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes());
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new Error('truncated fixed64');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

function expectWire(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new Error(`${what}: wire type ${actual}, expected ${expected}`);
}

function label(buf: Uint8Array): [string, string] {
  const r = new Reader(buf);
  let name = '';
  let value = '';
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1) {
      expectWire(wire, 2, 'Label.name');
      name = r.string();
    } else if (field === 2) {
      expectWire(wire, 2, 'Label.value');
      value = r.string();
    } else r.skip(wire);
  }
  return [name, value];
}

/** Prometheus's stale NaN (value.StaleNaN) as a little-endian double, read from its bits: JavaScript numbers do not keep a NaN's payload. */
const STALE_NAN = 0x7ff0000000000002n;

function sample(buf: Uint8Array): { value: number; timestampMs: number; stale?: true } {
  const r = new Reader(buf);
  let value = 0;
  let timestampMs = 0;
  let stale = false;
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1) {
      expectWire(wire, 1, 'Sample.value');
      stale = new DataView(buf.buffer, buf.byteOffset + r.pos, 8).getBigUint64(0, true) === STALE_NAN;
      value = r.double();
    } else if (field === 2) {
      expectWire(wire, 0, 'Sample.timestamp');
      timestampMs = Number(BigInt.asIntN(64, r.varint()));
    } else r.skip(wire);
  }
  return stale ? { value, timestampMs, stale } : { value, timestampMs };
}

function series(buf: Uint8Array): DecodedSeries {
  const r = new Reader(buf);
  const out: DecodedSeries = { labels: [], samples: [] };
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1) {
      expectWire(wire, 2, 'TimeSeries.labels');
      out.labels.push(label(r.bytes()));
    } else if (field === 2) {
      expectWire(wire, 2, 'TimeSeries.samples');
      out.samples.push(sample(r.bytes()));
    } else r.skip(wire);
  }
  return out;
}

function metadata(buf: Uint8Array): DecodedMetadata {
  const r = new Reader(buf);
  const out: DecodedMetadata = { type: 0, family: '', help: '', unit: '' };
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1) {
      expectWire(wire, 0, 'MetricMetadata.type');
      out.type = Number(r.varint());
    } else if (field === 2) {
      expectWire(wire, 2, 'MetricMetadata.metric_family_name');
      out.family = r.string();
    } else if (field === 4) {
      expectWire(wire, 2, 'MetricMetadata.help');
      out.help = r.string();
    } else if (field === 5) {
      expectWire(wire, 2, 'MetricMetadata.unit');
      out.unit = r.string();
    } else r.skip(wire);
  }
  return out;
}

export function decodeWriteRequest(buf: Uint8Array): DecodedWriteRequest {
  const r = new Reader(buf);
  const out: DecodedWriteRequest = { timeseries: [], metadata: [] };
  while (!r.done) {
    const { field, wire } = r.key();
    if (field === 1) {
      expectWire(wire, 2, 'WriteRequest.timeseries');
      out.timeseries.push(series(r.bytes()));
    } else if (field === 3) {
      expectWire(wire, 2, 'WriteRequest.metadata');
      out.metadata.push(metadata(r.bytes()));
    } else r.skip(wire);
  }
  if (r.pos !== buf.length) throw new Error('trailing bytes');
  return out;
}

/** `{__name__="x", a="b"}` → `x{a="b"}`, for readable assertions. */
export function seriesKey(labels: Array<[string, string]>): string {
  const name = labels.find(([n]) => n === '__name__')?.[1] ?? '';
  const rest = labels.filter(([n]) => n !== '__name__').map(([n, v]) => `${n}=${JSON.stringify(v)}`);
  return rest.length ? `${name}{${rest.join(',')}}` : name;
}

import { randomBytes } from 'node:crypto';
import {
  ACK_ENTRY_BYTES,
  bufferSource,
  decodeAcks,
  decodeRecord,
  encodeAck,
  EventMeta,
  recordBytes,
  scanSegment as scanSource,
} from './spool-record';

const scanSegment = (buf: Buffer) => scanSource(bufferSource(buf));

function meta(seq: number, extra: Partial<EventMeta> = {}): EventMeta {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    seq,
    method: 'POST',
    url: '/hook?x=1',
    headers: ['Host', 'relay:8080', 'Content-Type', 'application/json', 'X-Name', 'Zoë 東京'],
    client: '10.0.0.7',
    receivedAt: 1_700_000_000_000 + seq,
    queuedAt: 1_700_000_000_000 + seq,
    route: 'default',
    deliveryId: `d-${seq}`,
    ...extra,
  };
}

describe('record encoding', () => {
  it('gives back the meta and the body byte for byte, binary or empty', () => {
    for (const body of [randomBytes(5000), Buffer.alloc(0), Buffer.from('{"a" : 1}\r\n', 'utf8')]) {
      const bytes = recordBytes(meta(7), body);
      const rec = decodeRecord(bytes)!;
      expect(rec.meta).toEqual(meta(7));
      expect(rec.body.equals(body)).toBe(true);
      expect(rec.length).toBe(bytes.length);
    }
  });

  it('refuses the record when any single byte is changed (checksum over lengths, meta and body)', () => {
    const bytes = recordBytes(meta(1), Buffer.from('some body bytes'));
    for (let i = 0; i < bytes.length; i++) {
      const damaged = Buffer.from(bytes);
      damaged[i] ^= 0x01;
      expect(decodeRecord(damaged)).toBeNull();
    }
  });

  it('refuses every truncation of a record', () => {
    const bytes = recordBytes(meta(1), randomBytes(300));
    for (let cut = 0; cut < bytes.length; cut++) expect(decodeRecord(bytes.subarray(0, cut))).toBeNull();
  });

  it('refuses meta that checks out but is not an event', () => {
    const bad = recordBytes({ ...meta(1), headers: ['odd'] }, Buffer.alloc(0));
    expect(decodeRecord(bad)).toBeNull();
  });
});

describe('scanSegment', () => {
  const records = [1, 2, 3].map((n) => recordBytes(meta(n), randomBytes(100 + n)));
  const whole = Buffer.concat(records);
  const ends = records.map((_, i) => records.slice(0, i + 1).reduce((s, r) => s + r.length, 0));

  it('finds every record of an intact segment', async () => {
    const scan = await scanSegment(whole);
    expect(scan.records.map((r) => r.meta.seq)).toEqual([1, 2, 3]);
    expect(scan.records.map((r) => r.offset)).toEqual([0, ends[0], ends[1]]);
    expect(scan.damaged).toEqual([]);
    expect(scan.validEnd).toBe(whole.length);
  });

  it('a crash at any byte of the last write leaves the whole records before it and never a part', async () => {
    const next = recordBytes(meta(4), randomBytes(200));
    for (let cut = 0; cut < next.length; cut++) {
      const scan = await scanSegment(Buffer.concat([whole, next.subarray(0, cut)]));
      expect(scan.records.map((r) => r.meta.seq)).toEqual([1, 2, 3]);
      expect(scan.validEnd).toBe(whole.length);
    }
  });

  it('drops zeros or garbage after the last record (a power loss can leave them)', async () => {
    for (const tail of [Buffer.alloc(4096), randomBytes(777), Buffer.from('SPL1')]) {
      const scan = await scanSegment(Buffer.concat([whole, tail]));
      expect(scan.records).toHaveLength(3);
      expect(scan.damaged).toEqual([{ offset: whole.length, length: tail.length }]);
      expect(scan.validEnd).toBe(whole.length);
    }
  });

  it('skips a record damaged in its body when its length leads to the next intact record', async () => {
    const damaged = Buffer.from(whole);
    damaged[ends[0] + 40] ^= 0xff;
    const scan = await scanSegment(damaged);
    expect(scan.records.map((r) => r.meta.seq)).toEqual([1, 3]);
    expect(scan.damaged).toEqual([{ offset: ends[0], length: records[1].length }]);
  });

  it('drops the rest of the file when a damaged length cannot be trusted', async () => {
    const damaged = Buffer.from(whole);
    damaged[ends[0] + 9] ^= 0x10; // the second record's length field
    const scan = await scanSegment(damaged);
    expect(scan.records.map((r) => r.meta.seq)).toEqual([1]);
    expect(scan.validEnd).toBe(ends[0]);
  });

  it('never returns a record that was only a body: a torn event whose body holds a well-formed record', async () => {
    const smuggled = recordBytes(meta(99, { url: '/smuggled' }), Buffer.from('not an event of ours'));
    const carrier = recordBytes(meta(4), Buffer.concat([Buffer.from('prefix'), smuggled, Buffer.from('suffix')]));
    for (const cut of [20, carrier.length - 3]) {
      const scan = await scanSegment(Buffer.concat([whole, carrier.subarray(0, cut)]));
      expect(scan.records.map((r) => r.meta.seq)).toEqual([1, 2, 3]);
    }
    expect((await scanSegment(Buffer.concat([whole, carrier]))).records.map((r) => r.meta.seq)).toEqual([1, 2, 3, 4]);
  });
});

describe('ack entries', () => {
  it('read back as offset → seq, large seqs included', () => {
    const buf = Buffer.concat([encodeAck(0, 1), encodeAck(4096, 2 ** 40 + 5)]);
    expect([...decodeAcks(buf)]).toEqual([
      [0, 1],
      [4096, 2 ** 40 + 5],
    ]);
  });

  it('ignore a torn last entry and a damaged one', () => {
    const good = encodeAck(100, 3);
    const bad = encodeAck(200, 4);
    bad[1] ^= 0x01;
    const torn = encodeAck(300, 5).subarray(0, ACK_ENTRY_BYTES - 1);
    expect([...decodeAcks(Buffer.concat([good, bad, torn]))]).toEqual([[100, 3]]);
  });
});

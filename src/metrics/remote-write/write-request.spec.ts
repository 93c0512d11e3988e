import { compress, uncompress } from 'snappyjs';
import { decodeWriteRequest } from '../../../test/support/write-request-decoder';
import { snappyBlockDecode } from '../../../test/support/snappy-block';
import { encodeWriteRequest, utf8Length, WriteRequest } from './write-request';

describe('encodeWriteRequest', () => {
  it('writes the remote-write 1.0 wire format byte for byte', () => {
    const bytes = encodeWriteRequest({
      timeseries: [{ labels: [{ name: '__name__', value: 'a' }], samples: [{ value: 1, timestampMs: 2 }] }],
      metadata: [],
    });
    // WriteRequest.timeseries(1) { TimeSeries.labels(1) { name(1) "__name__", value(2) "a" }, samples(2) { value(1) double 1.0, timestamp(2) 2 } }
    const expected = Buffer.from([
      0x0a,
      0x1c,
      0x0a,
      0x0d,
      0x0a,
      0x08,
      ...Buffer.from('__name__'),
      0x12,
      0x01,
      0x61,
      0x12,
      0x0b,
      0x09,
      0,
      0,
      0,
      0,
      0,
      0,
      0xf0,
      0x3f,
      0x10,
      0x02,
    ]);
    expect(bytes.toString('hex')).toBe(expected.toString('hex'));
  });

  it('round-trips series, special values, millisecond timestamps, UTF-8 and metadata', () => {
    const now = 1_760_000_000_123;
    const req: WriteRequest = {
      timeseries: [
        {
          labels: [
            { name: '__name__', value: 'requests_total' },
            { name: 'path', value: 'caf\u00e9 "q" \\ \n \u{1F600}' },
          ],
          samples: [
            { value: 42.5, timestampMs: now },
            { value: 43, timestampMs: now + 30_000 },
          ],
        },
        { labels: [{ name: '__name__', value: 'x' }], samples: [{ value: NaN, timestampMs: 0 }] },
        { labels: [{ name: '__name__', value: 'y' }], samples: [{ value: -Infinity, timestampMs: -1 }] },
        { labels: [{ name: '__name__', value: 'z' }], samples: [{ value: Number.MAX_VALUE, timestampMs: 2 ** 53 - 1 }] },
        {
          labels: [{ name: '__name__', value: 'long'.repeat(100) }],
          samples: [
            { value: -0.000001, timestampMs: 127 },
            { value: 1, timestampMs: 128 },
          ],
        },
      ],
      metadata: [
        { family: 'requests', type: 'counter', help: 'Requests.' },
        { family: 'u', type: 'unknown', help: '' },
        { family: 'h', type: 'histogram', help: 'with unit', unit: 'seconds' },
      ],
    };
    const decoded = decodeWriteRequest(encodeWriteRequest(req));
    expect(decoded.timeseries.map((t) => t.labels)).toEqual(req.timeseries.map((t) => t.labels.map((l) => [l.name, l.value])));
    expect(decoded.timeseries.map((t) => t.samples)).toEqual(req.timeseries.map((t) => t.samples));
    expect(decoded.metadata).toEqual([
      { type: 1, family: 'requests', help: 'Requests.', unit: '' },
      { type: 0, family: 'u', help: '', unit: '' },
      { type: 4, family: 'h', help: 'with unit', unit: 'seconds' },
    ]);
  });

  it('counts UTF-8 bytes as Buffer does, lone surrogates included', () => {
    for (const s of ['', 'ascii', 'caf\u00e9', '\u20ac', '\u{1F600}', 'a\ud800b', '\udc00', '\ud800', 'x\u{10FFFF}\u07ff\u0800']) {
      expect(utf8Length(s)).toBe(Buffer.byteLength(s));
    }
    const lone = decodeWriteRequest(
      encodeWriteRequest({ timeseries: [{ labels: [{ name: '__name__', value: 'a\ud800b' }], samples: [] }], metadata: [] }),
    );
    expect(lone.timeseries[0].labels[0][1]).toBe('a\ufffdb');
  });

  it('encodes an empty request as zero bytes', () => {
    expect(encodeWriteRequest({ timeseries: [], metadata: [] })).toHaveLength(0);
  });
});

describe('staleness marker', () => {
  it("is written as Prometheus's stale NaN bits, 0x7ff0000000000002, not as a plain NaN", () => {
    const labels = [{ name: '__name__', value: 'm' }];
    const stale = encodeWriteRequest({ timeseries: [{ labels, samples: [{ value: NaN, timestampMs: 1, stale: true }] }], metadata: [] });
    const plain = encodeWriteRequest({ timeseries: [{ labels, samples: [{ value: NaN, timestampMs: 1 }] }], metadata: [] });
    expect(stale.includes(Buffer.from('020000000000f07f', 'hex'))).toBe(true);
    expect(plain.includes(Buffer.from('020000000000f07f', 'hex'))).toBe(false);
    expect(decodeWriteRequest(stale).timeseries[0].samples).toEqual([{ value: NaN, timestampMs: 1, stale: true }]);
    expect(decodeWriteRequest(plain).timeseries[0].samples).toEqual([{ value: NaN, timestampMs: 1 }]);
  });
});

describe('snappy block format (snappyjs)', () => {
  it('compresses so that an independent decoder gets the bytes back', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const inputs = [
      Buffer.alloc(0),
      Buffer.from('a'),
      Buffer.from('abcabcabcabcabcabcabcabcabcabcabcabc'),
      Buffer.alloc(200_000, 0x41),
      Buffer.from(Array.from({ length: 100_000 }, () => Math.floor(random() * 256))),
      Buffer.from(Array.from({ length: 100_000 }, () => 'process_cpu_seconds_total{job="x"}'.charCodeAt(Math.floor(random() * 34)))),
    ];
    for (const input of inputs) {
      const packed = compress(input);
      expect(snappyBlockDecode(packed).equals(input)).toBe(true);
      expect(Buffer.from(uncompress(packed)).equals(input)).toBe(true);
    }
  });

  it('reads a hand-made block with a literal and an overlapping copy', () => {
    // length 9; literal "abc"; copy-1 of length 6 at offset 3 -> "abcabcabc"
    const block = Buffer.from([0x09, 0x08, 0x61, 0x62, 0x63, 1 | ((6 - 4) << 2), 0x03]);
    expect(snappyBlockDecode(block).toString()).toBe('abcabcabc');
    expect(Buffer.from(uncompress(block)).toString()).toBe('abcabcabc');
  });
});

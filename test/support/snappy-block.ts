/**
 * A decoder of the snappy block format, for tests, written from the format description
 * (github.com/google/snappy format_description.txt) and independent of the compressor
 * under test: a varint with the uncompressed length, then literals and back-references.
 */
export function snappyBlockDecode(input: Uint8Array): Buffer {
  let pos = 0;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= input.length || shift > 28) throw new Error('bad length preamble');
    const b = input[pos++];
    length += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  const out = Buffer.alloc(length);
  let o = 0;
  const need = (n: number) => {
    if (pos + n > input.length) throw new Error('truncated element');
  };
  while (pos < input.length) {
    const tag = input[pos++];
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >> 2) + 1;
      if (len > 60) {
        const bytes = len - 60;
        need(bytes);
        len = 0;
        for (let i = 0; i < bytes; i++) len += input[pos++] * 2 ** (8 * i);
        len += 1;
      }
      need(len);
      if (o + len > length) throw new Error('literal overruns the declared length');
      out.set(input.subarray(pos, pos + len), o);
      pos += len;
      o += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      need(1);
      len = ((tag >> 2) & 7) + 4;
      offset = ((tag >> 5) << 8) | input[pos++];
    } else if (kind === 2) {
      need(2);
      len = (tag >> 2) + 1;
      offset = input[pos] | (input[pos + 1] << 8);
      pos += 2;
    } else {
      need(4);
      len = (tag >> 2) + 1;
      offset = (input[pos] | (input[pos + 1] << 8) | (input[pos + 2] << 16)) + input[pos + 3] * 2 ** 24;
      pos += 4;
    }
    if (offset === 0 || offset > o) throw new Error(`bad copy offset ${offset} at output ${o}`);
    if (o + len > length) throw new Error('copy overruns the declared length');
    // Byte by byte: a copy may overlap what it writes (offset < len repeats a pattern).
    for (let i = 0; i < len; i++, o++) out[o] = out[o - offset];
  }
  if (o !== length) throw new Error(`decoded ${o} bytes, the preamble says ${length}`);
  return out;
}

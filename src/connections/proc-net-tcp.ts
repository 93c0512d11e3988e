/**
 * The kernel's TCP socket tables, /proc/net/tcp and /proc/net/tcp6, as text. Each line
 * after the header is one socket:
 *
 *    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid ...
 *     0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 ...
 *
 * An address is the kernel's 32-bit words of the network-order address printed with %08X,
 * so each word's bytes come out in the host's order (reversed on little-endian machines);
 * the port is already in host order. Only the first four fields are read.
 */

/** The TCP states as include/net/tcp_states.h numbers them. */
export const TCP_STATES: Readonly<Record<number, string>> = {
  0x01: 'ESTABLISHED',
  0x02: 'SYN_SENT',
  0x03: 'SYN_RECV',
  0x04: 'FIN_WAIT1',
  0x05: 'FIN_WAIT2',
  0x06: 'TIME_WAIT',
  0x07: 'CLOSE',
  0x08: 'CLOSE_WAIT',
  0x09: 'LAST_ACK',
  0x0a: 'LISTEN',
  0x0b: 'CLOSING',
  0x0c: 'NEW_SYN_RECV',
  0x0d: 'BOUND_INACTIVE',
};

export type AddressFamily = 'ipv4' | 'ipv6';

export interface TcpSocket {
  family: AddressFamily;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** A name from TCP_STATES. */
  state: string;
}

export interface TcpTable {
  sockets: TcpSocket[];
  /** Lines that are not a socket this parser understands (the header line is not one of them). */
  skipped: number;
}

export interface ParseOptions {
  /** Keep only sockets whose local port is one of these; others are still checked for form. */
  localPorts?: ReadonlySet<number>;
  /** Byte order of the machine that wrote the table; /proc is always the local machine's. */
  littleEndian?: boolean;
}

const LINE = {
  ipv4: /^\s*\d+:\s+([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{2})(?:\s|$)/,
  ipv6: /^\s*\d+:\s+([0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+([0-9A-Fa-f]{2})(?:\s|$)/,
};

/**
 * Reads one table. A line that does not have the expected shape, or names a state the
 * kernel does not define, is skipped and counted: a kernel that adds a column or a state
 * must not stop the count of the sockets it can read.
 */
export function parseProcNetTcp(text: string, family: AddressFamily, options: ParseOptions = {}): TcpTable {
  const littleEndian = options.littleEndian ?? true;
  const pattern = LINE[family];
  const sockets: TcpSocket[] = [];
  let skipped = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    if (i === 0 && /^\s*sl\s/.test(line)) continue;
    const m = pattern.exec(line);
    const state = m ? TCP_STATES[parseInt(m[5], 16)] : undefined;
    if (!m || state === undefined) {
      skipped++;
      continue;
    }
    const localPort = parseInt(m[2], 16);
    if (options.localPorts && !options.localPorts.has(localPort)) continue;
    sockets.push({
      family,
      localAddress: decodeAddress(m[1], littleEndian),
      localPort,
      remoteAddress: decodeAddress(m[3], littleEndian),
      remotePort: parseInt(m[4], 16),
      state,
    });
  }
  return { sockets, skipped };
}

/** An address as the kernel prints it (8 or 32 hex digits) in its usual text form. */
export function decodeAddress(hex: string, littleEndian = true): string {
  const bytes = new Uint8Array(hex.length / 2);
  for (let word = 0; word < hex.length / 8; word++) {
    for (let b = 0; b < 4; b++) {
      const from = littleEndian ? 3 - b : b;
      bytes[word * 4 + b] = parseInt(hex.slice(word * 8 + from * 2, word * 8 + from * 2 + 2), 16);
    }
  }
  return bytes.length === 4 ? bytes.join('.') : formatIpv6(bytes);
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of zero groups as `::`; mapped IPv4 dotted. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  let bestStart = -1;
  let bestLength = 1; // a single zero group stays "0"
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

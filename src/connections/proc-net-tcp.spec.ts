import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAddress, parseProcNetTcp, TCP_STATES } from './proc-net-tcp';

const fixture = (name: 'tcp' | 'tcp6') => readFileSync(join(__dirname, '..', '..', 'test', 'fixtures', 'proc-net', name), 'utf8');

describe('parseProcNetTcp', () => {
  describe('/proc/net/tcp (IPv4)', () => {
    const table = parseProcNetTcp(fixture('tcp'), 'ipv4');

    it('reads every socket line and not the header', () => {
      expect(table.skipped).toBe(0);
      expect(table.sockets).toHaveLength(8);
    });

    it('decodes addresses, ports and states', () => {
      expect(table.sockets.slice(0, 3)).toEqual([
        { family: 'ipv4', localAddress: '0.0.0.0', localPort: 8080, remoteAddress: '0.0.0.0', remotePort: 0, state: 'LISTEN' },
        { family: 'ipv4', localAddress: '127.0.0.1', localPort: 8080, remoteAddress: '127.0.0.1', remotePort: 54000, state: 'ESTABLISHED' },
        { family: 'ipv4', localAddress: '10.0.2.15', localPort: 8080, remoteAddress: '10.0.2.1', remotePort: 50010, state: 'ESTABLISHED' },
      ]);
      expect(table.sockets.map((s) => s.state)).toEqual([
        'LISTEN',
        'ESTABLISHED',
        'ESTABLISHED',
        'TIME_WAIT',
        'ESTABLISHED',
        'LISTEN',
        'CLOSE_WAIT',
        'TIME_WAIT',
      ]);
    });

    it('keeps only the local ports asked for, by local port, not remote', () => {
      const only = parseProcNetTcp(fixture('tcp'), 'ipv4', { localPorts: new Set([8080]) });
      expect(only.sockets.every((s) => s.localPort === 8080)).toBe(true);
      expect(only.sockets).toHaveLength(5);
      // The client end of a loopback connection (remote port 8080) and an outgoing
      // connection to some other host's 8080 are not this port's sockets.
      expect(only.sockets.some((s) => s.remotePort === 8080)).toBe(false);
    });
  });

  describe('/proc/net/tcp6', () => {
    const table = parseProcNetTcp(fixture('tcp6'), 'ipv6');

    it('decodes the unspecified, loopback, global and IPv4-mapped addresses', () => {
      expect(table.sockets).toEqual([
        { family: 'ipv6', localAddress: '::', localPort: 8080, remoteAddress: '::', remotePort: 0, state: 'LISTEN' },
        {
          family: 'ipv6',
          localAddress: '::ffff:127.0.0.1',
          localPort: 8080,
          remoteAddress: '::ffff:127.0.0.1',
          remotePort: 41496,
          state: 'ESTABLISHED',
        },
        { family: 'ipv6', localAddress: '::1', localPort: 8080, remoteAddress: '::1', remotePort: 35324, state: 'ESTABLISHED' },
        {
          family: 'ipv6',
          localAddress: '2001:db8::1',
          localPort: 8080,
          remoteAddress: '2001:db8::2',
          remotePort: 49153,
          state: 'TIME_WAIT',
        },
        {
          family: 'ipv6',
          localAddress: '::ffff:10.0.2.15',
          localPort: 9090,
          remoteAddress: '::ffff:10.0.2.1',
          remotePort: 49154,
          state: 'ESTABLISHED',
        },
      ]);
    });

    it('skips and counts malformed lines: truncated, unknown state, an IPv4 address, garbage', () => {
      expect(table.skipped).toBe(4);
    });

    it('counts a malformed line even when its port is not monitored', () => {
      expect(parseProcNetTcp(fixture('tcp6'), 'ipv6', { localPorts: new Set([1]) })).toEqual({ sockets: [], skipped: 4 });
    });
  });

  describe('the header line', () => {
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const line = '   0: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 20 4 30 10 -1\n';

    it('is skipped without being counted, alone or before sockets', () => {
      expect(parseProcNetTcp(header, 'ipv4')).toEqual({ sockets: [], skipped: 0 });
      expect(parseProcNetTcp(header + line, 'ipv4')).toMatchObject({ sockets: [{ state: 'ESTABLISHED' }], skipped: 0 });
    });

    it('is only the first line: a header-like line later is malformed', () => {
      expect(parseProcNetTcp(line + header, 'ipv4')).toMatchObject({ sockets: [{ localPort: 8080 }], skipped: 1 });
    });

    it('is not required, and blank lines and CRLF endings are harmless', () => {
      expect(parseProcNetTcp('', 'ipv4')).toEqual({ sockets: [], skipped: 0 });
      expect(parseProcNetTcp(`\n${line}\n\n`, 'ipv4').sockets).toHaveLength(1);
      expect(parseProcNetTcp(line.replace('\n', '\r\n'), 'ipv4')).toMatchObject({ sockets: [{ localPort: 8080 }], skipped: 0 });
    });
  });

  it.each([
    ['a lower-case hex line', '   0: 0100007f:1f90 0100007f:d2f0 0a 00000000:00000000', 0],
    ['no slot number', '0100007F:1F90 0100007F:D2F0 01', 1],
    ['a short address', '   0: 100007F:1F90 0100007F:D2F0 01 00000000:00000000', 1],
    ['a five-digit port', '   0: 0100007F:1F901 0100007F:D2F0 01 00000000:00000000', 1],
    ['state 00', '   0: 0100007F:1F90 0100007F:D2F0 00 00000000:00000000', 1],
    ['a three-digit state', '   0: 0100007F:1F90 0100007F:D2F0 010 00000000:00000000', 1],
    ['non-hex in an address', '   0: 0100007G:1F90 0100007F:D2F0 01 00000000:00000000', 1],
  ])('%s → %d skipped', (_, text, skipped) => {
    expect(parseProcNetTcp(text, 'ipv4').skipped).toBe(skipped);
  });

  it('never throws on arbitrary input', () => {
    for (const text of ['\u0000\u00ff', ':'.repeat(1000), '  sl\n'.repeat(3), ' 1: :\n 2: ::: 01']) {
      expect(() => parseProcNetTcp(text, 'ipv6')).not.toThrow();
    }
  });

  it('names every state the kernel defines', () => {
    expect(Object.keys(TCP_STATES)).toHaveLength(13);
    expect([TCP_STATES[1], TCP_STATES[6], TCP_STATES[10]]).toEqual(['ESTABLISHED', 'TIME_WAIT', 'LISTEN']);
  });
});

describe('decodeAddress', () => {
  it.each([
    ['0100007F', '127.0.0.1'],
    ['00000000', '0.0.0.0'],
    ['0F02000A', '10.0.2.15'],
    ['FFFFFFFF', '255.255.255.255'],
    ['00000000000000000000000001000000', '::1'],
    ['000080FE000000000000000001000000', 'fe80::1'],
    ['B80D0120000000000000000001000000', '2001:db8::1'],
    ['B80D0120010000000000000001000000', '2001:db8:0:1::1'], // a lone zero group stays
    ['B80D0120000000000000010001000000', '2001:db8::1:0:0:1'], // the first of two equally long runs
    ['B80D0120010001000100010001000100', '2001:db8:1:1:1:1:1:1'],
    ['0000000000000000FFFF00000100007F', '::ffff:127.0.0.1'],
    ['0000000000000000FFFF000000000000', '::ffff:0.0.0.0'],
  ])('%s (little-endian) is %s', (hex, text) => expect(decodeAddress(hex)).toBe(text));

  it('reads the words in order on a big-endian machine', () => {
    expect(decodeAddress('7F000001', false)).toBe('127.0.0.1');
    expect(decodeAddress('20010DB8000000000000000000000001', false)).toBe('2001:db8::1');
    expect(decodeAddress('00000000000000000000FFFF0A00020F', false)).toBe('::ffff:10.0.2.15');
  });
});

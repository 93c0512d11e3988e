import { once } from 'node:events';
import { type AddressInfo, connect } from 'node:net';
import { InboundServer } from './inbound';

describe('InboundServer', () => {
  it('lets the end of an answer out to a caller that reads slowly when the idle time runs out, then closes', async () => {
    const answer = Buffer.alloc(32 * 1024 * 1024, 0x62);
    const server = new InboundServer({ maxBodyBytes: 1024, keepAliveMs: 300, requestTimeoutMs: 3000 }, {
      request: (_req, reply) => reply.send(200, 'OK', 'application/octet-stream', answer),
      tooLarge: (_declared, reply) => reply.json(413, 'too_large', 'too large'),
    });
    await server.listen(0, '127.0.0.1');
    try {
      const socket = connect((server.net.address() as AddressInfo).port, '127.0.0.1');
      socket.pause();
      socket.write('GET /big HTTP/1.1\r\nHost: relay.test\r\n\r\n');
      // The whole answer is handed to the socket at once; most of it is still waiting to
      // leave when the 300 ms of idle time are over.
      await new Promise((r) => setTimeout(r, 1000));
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.resume();
      await once(socket, 'close');
      const got = Buffer.concat(chunks);
      const bodyStart = got.indexOf('\r\n\r\n') + 4;
      expect(got.subarray(0, 17).toString()).toBe('HTTP/1.1 200 OK\r\n');
      expect(got.length - bodyStart).toBe(answer.length);
    } finally {
      server.closeAllConnections();
      await server.close();
    }
  });
});

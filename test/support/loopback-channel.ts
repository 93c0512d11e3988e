import { createServer, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for "smee server + smee client" in one hop: every POST to the channel is
 * answered and, unless the client is `frozen`, forwarded unchanged to `target`. It lets the
 * health-check tests steer each failure mode directly; the real smee-client is exercised
 * in smee-roundtrip.int-spec.ts.
 */
export class LoopbackChannel {
  target = '';
  /** Status the "server" answers the POST with. */
  status = 200;
  /** A frozen client takes events and never forwards them. */
  frozen = false;
  posts = 0;
  private server: Server | null = null;

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      this.posts++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(this.status).end();
        if (this.frozen || this.status >= 300) return;
        const headers = { ...req.headers };
        delete headers.host;
        const out = request(`${this.target}/`, { method: 'POST', headers });
        out.on('response', (r) => r.resume());
        out.on('error', () => undefined);
        out.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/channel`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * prosody as signal-sidecar polls it: BOSH at /http-bind (GET answers its "it works" page)
 * and mod_muc_census at /room-census, served only on the conference component's virtual
 * host (the request's Host), as prosody serves a module's HTTP path on the host it is
 * loaded on. Records the Host of every census request.
 */
export class FakeProsody {
  readonly censusHosts: string[] = [];
  rooms: Array<{ room_name: string; participants: number; created_time: number }> = [];
  private server: Server | null = null;

  constructor(private readonly conferenceHost: string) {}

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      req.resume();
      const path = (req.url ?? '/').split('?')[0];
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (path === '/http-bind') {
        res
          .writeHead(200, { 'content-type': 'text/html' })
          .end('<html><body><p>It works! Now point your BOSH client to this URL to connect to Prosody.</p></body></html>');
      } else if (path === '/room-census') {
        this.censusHosts.push(host);
        if (host !== this.conferenceHost) {
          res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>Not Found</body></html>');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ room_census: this.rooms }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }
}

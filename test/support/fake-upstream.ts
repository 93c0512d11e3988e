import { createServer, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamAnswer =
  | { status: number; body?: string; contentType?: string }
  /** Accepts the request and never answers. */
  | { hang: true }
  /** 200 with a body of `bytes`, streamed in 64 KiB chunks while the client reads. */
  | { status: number; hugeBytes: number };

/**
 * An upstream whose answer per path the test sets (`answer(path, ...)`); paths without
 * one get 404. Counts requests per path.
 */
export class FakeUpstream {
  readonly hits = new Map<string, number>();
  private readonly answers = new Map<string, UpstreamAnswer>();
  private server: Server | null = null;

  answer(path: string, a: UpstreamAnswer): this {
    this.answers.set(path, a);
    return this;
  }

  /** `{...}` as the JSON body of a 200 for `path`. */
  json(path: string, doc: unknown): this {
    return this.answer(path, { status: 200, body: JSON.stringify(doc), contentType: 'application/json' });
  }

  async listen(): Promise<string> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      req.resume();
      const a = this.answers.get(path) ?? { status: 404, body: 'not found' };
      if ('hang' in a) return;
      if ('hugeBytes' in a) return streamHuge(res, a.status, a.hugeBytes);
      res.writeHead(a.status, { 'content-type': a.contentType ?? 'text/plain' }).end(a.body ?? '');
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

function streamHuge(res: ServerResponse, status: number, bytes: number): void {
  const chunk = Buffer.alloc(64 * 1024, '<p>html</p>');
  res.writeHead(status, { 'content-type': 'text/html', 'content-length': String(bytes) });
  let left = bytes;
  const pump = () => {
    while (left > 0 && !res.destroyed) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end();
  };
  res.on('error', () => undefined);
  pump();
}

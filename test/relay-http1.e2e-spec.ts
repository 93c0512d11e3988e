import { randomBytes } from 'node:crypto';
import { Agent, createServer, IncomingMessage, request as httpRequest, Server, ServerResponse } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import { start } from './support/sidecar';
import { waitFor } from './support/wait-for';

/**
 * HTTP/1.1 as a caller of the relay sees it on the wire, and as a downstream sees the
 * relay: framing, keep-alive, pipelining, interim responses, odd bytes in headers,
 * errors mid-stream. Black-box: raw sockets on both sides where a client or server
 * library would tidy up what is being checked. relay.e2e-spec.ts covers routing,
 * hop-by-hop headers, bodies, limits and error answers.
 */

type Started = Awaited<ReturnType<typeof start>>;

// ---------------------------------------------------------------------------------------
// The caller: a raw socket that writes exact bytes and parses exact responses.

interface RawResponse {
  version: string;
  status: number;
  /** Every header line in order, name and value as latin1 text (one char per byte). */
  headers: Array<[string, string]>;
  body: Buffer;
  /** False when the connection ended before the framing said the message was over. */
  complete: boolean;
}

function headerValues(res: RawResponse, name: string): string[] {
  return res.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

function headerValue(res: RawResponse, name: string): string | undefined {
  return headerValues(res, name)[0];
}

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * One response from the start of `buf`, or null when more bytes are needed. Once the
 * peer has ended (`ended`), what there is counts: a close-delimited body is complete,
 * anything else cut short is returned with complete = false.
 */
function parseResponse(buf: Buffer, ended: boolean, noBody: boolean): { res: RawResponse; used: number } | null {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd === -1) return null;
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: .*)?$/.exec(lines[0]);
  if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
  const headers = lines.slice(1).map((l): [string, string] => {
    const colon = l.indexOf(':');
    if (colon <= 0) throw new Error(`not a header line: ${JSON.stringify(l)}`);
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const res: RawResponse = { version: m[1], status: Number(m[2]), headers, body: Buffer.alloc(0), complete: true };
  let pos = headEnd + 4;
  if (noBody || res.status < 200 || res.status === 204 || res.status === 304) return { res, used: pos };

  const te = headerValues(res, 'transfer-encoding').join(',').toLowerCase();
  const cl = headerValue(res, 'content-length');
  const cut = (body: Buffer) => ({ res: { ...res, body, complete: false }, used: buf.length });
  if (te.includes('chunked')) {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd === -1) return ended ? cut(Buffer.concat(parts)) : null;
      const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1').split(';')[0].trim(), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size line');
      pos = lineEnd + 2;
      if (size === 0) {
        // no trailers: CRLF at once; else trailer lines up to an empty line
        if (buf.length >= pos + 2 && buf[pos] === 13 && buf[pos + 1] === 10)
          return { res: { ...res, body: Buffer.concat(parts) }, used: pos + 2 };
        const end = buf.indexOf(CRLF2, pos);
        if (end !== -1) return { res: { ...res, body: Buffer.concat(parts) }, used: end + 4 };
        return ended ? cut(Buffer.concat(parts)) : null;
      }
      if (buf.length < pos + size + 2) return ended ? cut(Buffer.concat([...parts, buf.subarray(pos)])) : null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
  }
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < pos + n) return ended ? cut(buf.subarray(pos)) : null;
    return { res: { ...res, body: buf.subarray(pos, pos + n) }, used: pos + n };
  }
  // neither: the body runs to the end of the connection
  return ended ? { res: { ...res, body: buf.subarray(pos) }, used: buf.length } : null;
}

const openClients = new Set<RawClient>();

class RawClient {
  private buf = Buffer.alloc(0);
  /** The relay sent FIN (or the connection broke). */
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | null = null;
  private wakers: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e;
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.closed = true;
      openClients.delete(this);
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        const c = new RawClient(socket);
        openClients.add(c);
        resolve(c);
      });
    });
  }

  /** Strings go out as latin1: one byte per char, so "\xe9" is the byte 0xE9. */
  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** The next response; `noBody` for the answer to a HEAD. Rejects if none comes within `timeoutMs`. */
  async read({ noBody = false, timeoutMs = 3000 } = {}): Promise<RawResponse> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const got = parseResponse(this.buf, this.ended, noBody);
      if (got) {
        this.buf = this.buf.subarray(got.used);
        return got.res;
      }
      if (this.ended) throw new Error(`connection ended before a whole response head; got ${JSON.stringify(this.buf.toString('latin1'))}`);
      if (!(await this.until(deadline)))
        throw new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(this.buf.toString('latin1'))}`);
    }
  }

  /** Whether the connection is closed within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.closed) if (!(await this.until(deadline))) return false;
    return true;
  }

  /** Bytes received and not yet read as a response. */
  get pending(): Buffer {
    return this.buf;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private until(deadline: number): Promise<boolean> {
    const left = deadline - performance.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), left);
      this.wakers.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }
}

function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: relay.test\r\n${extra}\r\n`;
}

/** A GET through node:http (which decodes chunking) on a fresh connection: status and body bytes. */
function fetchVia(
  port: number,
  path: string,
  agent: Agent | false = false,
): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// Downstreams.

interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

/** A node:http downstream that records requests and counts TCP connections. */
class HttpDownstream {
  readonly requests: Received[] = [];
  handler: (req: Received, res: ServerResponse) => void = (_req, res) => res.end('ok');
  /** TCP connections accepted so far, open now, and the most open at once. */
  accepted = 0;
  open = 0;
  maxOpen = 0;
  readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec = { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
        this.requests.push(rec);
        this.handler(rec, res);
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.accepted++;
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      s.on('close', () => this.open--);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.requests.length = 0;
    this.handler = (_req, res) => res.end('ok');
    this.maxOpen = this.open;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * A downstream on a bare TCP server that answers with exact bytes. It reads request heads
 * (the relay's requests in these tests carry no body) and hands each to `respond`.
 */
class RawDownstream {
  respond: (socket: Socket, head: string) => void = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  readonly heads: string[] = [];
  accepted = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: NetServer;

  constructor() {
    this.server = createNetServer((socket) => {
      this.accepted++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      let buf = '';
      socket.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let end: number;
        while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          this.heads.push(head);
          this.respond(socket, head);
        }
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.heads.length = 0;
    this.respond = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');

afterEach(() => {
  for (const c of openClients) c.destroy();
  openClients.clear();
});

// ---------------------------------------------------------------------------------------

describe('relay HTTP/1.1: caller connections', () => {
  const downstream = new HttpDownstream();
  let sidecar: Started;
  let port: number;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url });
    port = sidecar.relayPort!;
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => downstream.reset());

  /** /delay/<ms>/<name>: answers "<name>" (":" and the body, if any) after <ms>. */
  function delayByPath(): void {
    downstream.handler = (req, res) => {
      const [, , ms, name] = req.url.split('/');
      const text = req.body.length > 0 ? `${name}:${req.body.toString('latin1')}` : name;
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(text), Number(ms));
    };
  }

  it('refuses a request target that is not a path (absolute URL, *) with 400 JSON, forwards nothing, closes', async () => {
    for (const line of ['GET http://evil.example/steal HTTP/1.1', 'OPTIONS * HTTP/1.1']) {
      const c = await RawClient.connect(port);
      c.write(`${line}\r\nHost: evil.example\r\n\r\n`);
      const res = await c.read();
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body.toString())).toMatchObject({ error: 'bad_request', message: expect.stringContaining('origin-form') });
      expect(await c.closedWithin(2000)).toBe(true);
    }
    expect(downstream.requests).toHaveLength(0);
  });

  it('refuses a transfer coding other than chunked (501) and a second Host (400); forwards neither', async () => {
    const coded = await RawClient.connect(port);
    coded.write('POST /gz HTTP/1.1\r\nHost: relay.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    const res = await coded.read();
    expect([res.status, JSON.parse(res.body.toString()).error]).toEqual([501, 'not_implemented']);
    const twoHosts = await RawClient.connect(port);
    twoHosts.write('GET /h HTTP/1.1\r\nHost: relay.test\r\nHost: evil.example\r\n\r\n');
    expect((await twoHosts.read()).status).toBe(400);
    expect(downstream.requests).toHaveLength(0);
  });

  it('takes a caller that half-closes right after its request as gone: no answer, the connection closed, and it keeps serving', async () => {
    // Node's HTTP server ends a connection whose caller sent FIN (docs/http.md, half-close).
    delayByPath();
    const c = await RawClient.connect(port);
    c.write('POST /delay/50/half HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 2\r\n\r\nhi');
    c.socket.end();
    expect(await c.closedWithin(2000)).toBe(true);
    expect(c.pending.toString('latin1')).not.toMatch(/^HTTP\/1\.1 200/);
    expect((await fetchVia(port, '/delay/0/after')).body.toString()).toBe('after');
  });

  it('answers two pipelined requests in the order they were sent, though downstream answers the second first', async () => {
    delayByPath();
    const c = await RawClient.connect(port);
    c.write(get('/delay/200/first') + get('/delay/0/second'));
    const a = await c.read();
    const b = await c.read();
    expect([a.status, a.body.toString()]).toEqual([200, 'first']);
    expect([b.status, b.body.toString()]).toEqual([200, 'second']);
  });

  it('answers three pipelined requests (one with a body) in order, each with its own body', async () => {
    delayByPath();
    const c = await RawClient.connect(port);
    c.write(
      get('/delay/150/one') +
        'POST /delay/0/two HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 11\r\n\r\nGET / HTTP/' +
        get('/delay/60/three'),
    );
    const got = [await c.read(), await c.read(), await c.read()];
    expect(got.map((r) => [r.status, r.body.toString('latin1')])).toEqual([
      [200, 'one'],
      [200, 'two:GET / HTTP/'],
      [200, 'three'],
    ]);
    expect(downstream.requests).toHaveLength(3);
  });

  it('tells the caller how long an idle connection stays open (Keep-Alive: timeout), so that it does not send on one being closed', async () => {
    const c = await RawClient.connect(port);
    c.write(get('/ka'));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(headerValue(r, 'connection')).toBe('keep-alive');
    expect(headerValue(r, 'keep-alive')).toBe('timeout=5');
  });

  it('reuses downstream connections: 20 sequential requests take at most 2 downstream TCP connections', async () => {
    const before = downstream.accepted;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await fetchVia(port, `/seq/${i}`, agent);
        expect(r.status).toBe(200);
      }
    } finally {
      agent.destroy();
    }
    expect(downstream.requests).toHaveLength(20);
    expect(downstream.accepted - before).toBeLessThanOrEqual(2);
  });

  it('keeps serving after the downstream closes an idle keep-alive connection between requests', async () => {
    const post = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.end('payload');
      });

    // unannounced: downstream just closes its idle connections
    expect(await post('/a')).toBe(200);
    downstream.server.closeIdleConnections();
    await waitFor('downstream to close its idle connections', () => downstream.open === 0);
    expect(await post('/b')).toBe(200);

    // by its keep-alive timeout
    const saved = downstream.server.keepAliveTimeout;
    downstream.server.keepAliveTimeout = 200;
    try {
      expect(await post('/c')).toBe(200);
      await waitFor('the idle downstream connection to close', () => downstream.open === 0, { timeoutMs: 2000 });
      expect(await post('/d')).toBe(200);
    } finally {
      downstream.server.keepAliveTimeout = saved;
    }
    expect(downstream.requests.map((r) => r.body.toString())).toEqual(['payload', 'payload', 'payload', 'payload']);
  });

  it('passes request header values with non-ASCII bytes and repeated headers to downstream unchanged and in order', async () => {
    const c = await RawClient.connect(port);
    c.write(get('/h', 'X-Name: caf\xe9 \xff\r\nX-Dup: one\r\nX-Between: 1\r\nX-Dup: two\r\n'));
    expect((await c.read()).status).toBe(200);
    const raw = downstream.requests[0].rawHeaders;
    const values = (name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1].toLowerCase() === name);
    expect(values('x-name').map(latin1)).toEqual([Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff])]);
    // a proxy may fold repeated fields into one line (RFC 9110 5.3); the values keep their order either way
    expect(values('x-dup').join(', ')).toBe('one, two');
  });

  it('answers an HTTP/1.0 request without keep-alive and then closes the connection', async () => {
    downstream.handler = (_r, res) => res.end('for 1.0');
    const c = await RawClient.connect(port);
    c.write('GET /old HTTP/1.0\r\nHost: relay.test\r\n\r\n');
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('for 1.0');
    expect(headerValues(r, 'transfer-encoding')).toEqual([]); // a 1.0 client cannot decode chunking
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('honours Connection: close from the caller: says so in the response and closes after it', async () => {
    const c = await RawClient.connect(port);
    c.write(get('/bye', 'Connection: close\r\n'));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('ok');
    expect(headerValue(r, 'connection')?.toLowerCase()).toBe('close');
    expect(await c.closedWithin(2000)).toBe(true);
  });

  it('answers Expect: 100-continue with 100 Continue, then relays the body without the expectation', async () => {
    downstream.handler = (req, res) => res.writeHead(201, { 'content-type': 'text/plain' }).end(`got ${req.body.length}`);
    const body = randomBytes(100_000);
    const c = await RawClient.connect(port);
    c.write(
      `POST /upload HTTP/1.1\r\nHost: relay.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    // curl waits a second for this before sending the body anyway
    const interim = await c.read({ timeoutMs: 2000 });
    expect(interim.status).toBe(100);
    expect(interim.version).toBe('HTTP/1.1');
    c.write(body);
    const r = await c.read();
    expect([r.status, r.body.toString()]).toEqual([201, 'got 100000']);
    expect(downstream.requests).toHaveLength(1);
    expect(downstream.requests[0].body.equals(body)).toBe(true);
    const names = downstream.requests[0].rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('expect');
  });

  it('relays 204 and 304 without a body, and the same connection serves the next requests', async () => {
    downstream.handler = (req, res) => {
      if (req.url === '/no-content') res.writeHead(204, { 'x-kind': 'empty' }).end();
      else if (req.url === '/cached') res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' }).end();
      else res.end(`after ${req.url}`);
    };
    const c = await RawClient.connect(port);
    // one at a time on a keep-alive connection
    c.write(get('/no-content'));
    const a = await c.read();
    expect([a.status, headerValue(a, 'x-kind')]).toEqual([204, 'empty']);
    c.write(get('/cached', 'If-None-Match: "v1"\r\n'));
    const b = await c.read();
    expect([b.status, headerValue(b, 'etag')]).toEqual([304, '"v1"']);
    c.write(get('/one'));
    expect((await c.read()).body.toString()).toBe('after /one');
    // then pipelined: any body bytes after a 204/304 would be read as the next response
    c.write(get('/no-content') + get('/cached') + get('/two'));
    const got = [await c.read(), await c.read(), await c.read()];
    expect(got.map((r) => r.status)).toEqual([204, 304, 200]);
    expect(got[2].body.toString()).toBe('after /two');
    expect(c.pending.length).toBe(0);
  });

  it("answers HEAD with downstream's Content-Length and no body, and the connection serves a following GET", async () => {
    downstream.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
      res.end(req.method === 'HEAD' ? undefined : 'hello world');
    };
    const c = await RawClient.connect(port);
    c.write('HEAD /doc HTTP/1.1\r\nHost: relay.test\r\n\r\n');
    const h = await c.read({ noBody: true });
    expect(h.status).toBe(200);
    expect(headerValue(h, 'content-length')).toBe('11');
    c.write(get('/doc'));
    const g = await c.read();
    expect([g.status, g.body.toString()]).toEqual([200, 'hello world']);
    expect(downstream.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });

  it('answers a request whose header block is over 16 KiB with 431 and keeps serving (12 KiB passes)', async () => {
    const c = await RawClient.connect(port);
    c.write(get('/huge', `X-Big: ${'a'.repeat(17 * 1024)}\r\n`));
    const r = await c.read();
    expect(r.status).toBe(431);
    expect(downstream.requests).toHaveLength(0);

    const ok = await RawClient.connect(port);
    ok.write(get('/big-but-fine', `X-Big: ${'b'.repeat(12 * 1024)}\r\n`));
    expect((await ok.read()).status).toBe(200);
    expect(downstream.requests[0].rawHeaders).toContain('b'.repeat(12 * 1024));
  });

  it('serves 200 concurrent requests over 50 keep-alive connections, each with its own answer', async () => {
    downstream.handler = (req, res) => setTimeout(() => res.end(`echo ${req.url.split('/')[2]}`), Math.floor(Math.random() * 10));
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => fetchVia(port, `/id/${i}-${'x'.repeat(i % 7)}`, agent)));
      results.forEach((r, i) => {
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe(`echo ${i}-${'x'.repeat(i % 7)}`);
      });
    } finally {
      agent.destroy();
    }
    expect(downstream.requests).toHaveLength(200);
  });
});

describe('relay HTTP/1.1: downstream responses on the wire', () => {
  const downstream = new RawDownstream();
  let sidecar: Started;
  let port: number;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url, RELAY_TIMEOUT_SECONDS: '3' });
    port = sidecar.relayPort!;
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => downstream.reset());

  it('answers 502 to a response in a transfer coding other than chunked, rather than pass its coded bytes as the body', async () => {
    downstream.respond = (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    const got = await fetchVia(port, '/coded');
    expect(got.status).toBe(502);
    // The next request is served (on a fresh connection, closed after it so that no pooled one is left for the tests after).
    downstream.respond = (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
    expect((await fetchVia(port, '/next')).body.toString()).toBe('ok');
  });

  it('still answers the next request after downstream answers with Connection: close', async () => {
    let n = 0;
    downstream.respond = (s) => {
      n++;
      s.end(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nreq-${n}`);
    };
    const before = downstream.accepted;
    const c = await RawClient.connect(port);
    c.write(get('/one'));
    const a = await c.read();
    expect([a.status, a.body.toString()]).toEqual([200, 'req-1']);
    // the downstream's Connection: close is about its own hop: the caller's connection stays open
    c.write(get('/two'));
    const b = await c.read();
    expect([b.status, b.body.toString()]).toEqual([200, 'req-2']);
    expect(downstream.accepted - before).toBe(2);
  });

  it('relays a close-delimited (HTTP/1.0-style, no length, no chunking) body byte for byte', async () => {
    const body = Buffer.concat([randomBytes(50_000), latin1('\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n'), randomBytes(30_000)]);
    downstream.respond = (s) => {
      s.write('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
      s.write(body.subarray(0, 1000));
      setTimeout(() => {
        s.write(body.subarray(1000, 60_000));
        setTimeout(() => s.end(body.subarray(60_000)), 10);
      }, 10);
    };
    const r = await fetchVia(port, '/stream');
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(body.length);
    expect(r.body.equals(body)).toBe(true);
  });

  it('relays a chunked body of several chunks byte for byte', async () => {
    const pieces = [latin1('first;'), randomBytes(3000), latin1('\r\n0\r\n\r\n'), latin1('\xe9\x00\xff'), latin1('last')];
    downstream.respond = (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
      s.write(`6\r\n${pieces[0].toString('latin1')}\r\n`);
      // hex in upper case, a chunk extension, and a chunk split across writes
      s.write(`BB8;note=x\r\n`);
      s.write(pieces[1].subarray(0, 1000));
      setTimeout(() => {
        s.write(Buffer.concat([pieces[1].subarray(1000), latin1('\r\n'), latin1('7\r\n'), pieces[2], latin1('\r\n')]));
        s.write(Buffer.concat([latin1('3\r\n'), pieces[3], latin1('\r\n4\r\nlast\r\n0\r\n\r\n')]));
      }, 10);
    };
    const r = await fetchVia(port, '/chunks');
    expect(r.status).toBe(200);
    expect(r.body.equals(Buffer.concat(pieces))).toBe(true);
    // the downstream connection is still good for the next request
    downstream.reset();
    const again = await fetchVia(port, '/after');
    expect([again.status, again.body.toString()]).toEqual([200, 'ok']);
  });

  it('passes response header values with non-ASCII bytes and repeated Set-Cookie to the caller unchanged', async () => {
    const cookies = ['a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/', 'b=2; HttpOnly'];
    downstream.respond = (s) =>
      s.write(
        latin1(
          `HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Name: caf\xe9 \xff\r\nSet-Cookie: ${cookies[0]}\r\nSet-Cookie: ${cookies[1]}\r\n\r\nok`,
        ),
      );
    const c = await RawClient.connect(port);
    c.write(get('/cookies'));
    const r = await c.read();
    expect(r.status).toBe(200);
    expect(headerValues(r, 'x-name').map(latin1)).toEqual([Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff])]);
    expect(headerValues(r, 'set-cookie')).toEqual(cookies);
    expect(r.body.toString()).toBe('ok');
  });

  it('closes the caller connection (no hang) when downstream resets mid-body, and keeps serving', async () => {
    downstream.respond = (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
      setTimeout(() => s.resetAndDestroy(), 50);
    };
    const c = await RawClient.connect(port);
    c.write(get('/broken'));
    expect(await c.closedWithin(2000)).toBe(true);
    // whatever arrived must not look like a whole 200 response
    const got = parseResponse(c.pending, true, false);
    if (got !== null && got.res.status === 200) expect(got.res.complete).toBe(false);

    downstream.reset();
    const next = await fetchVia(port, '/next');
    expect([next.status, next.body.toString()]).toEqual([200, 'ok']);
  });
});

describe('relay HTTP/1.1: RELAY_MAX_CONNECTIONS', () => {
  const downstream = new HttpDownstream();
  let sidecar: Started;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url, RELAY_MAX_CONNECTIONS: '2' });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });

  it('queues 10 concurrent slow requests over at most 2 downstream connections, and all succeed', async () => {
    let inHandler = 0;
    let maxInHandler = 0;
    downstream.handler = (req, res) => {
      inHandler++;
      maxInHandler = Math.max(maxInHandler, inHandler);
      setTimeout(() => {
        inHandler--;
        res.end(`slow ${req.url}`);
      }, 80);
    };
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => fetchVia(sidecar.relayPort!, `/slow/${i}`)));
    expect(results.map((r) => [r.status, r.body.toString()])).toEqual(Array.from({ length: 10 }, (_, i) => [200, `slow /slow/${i}`]));
    expect(downstream.maxOpen).toBeLessThanOrEqual(2);
    expect(maxInHandler).toBeLessThanOrEqual(2);
  });
});

describe('relay HTTP/1.1: a destination that answers more than it was asked', () => {
  const downstream = new RawDownstream();
  let sidecar: Started;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url, RELAY_MAX_CONNECTIONS: '1', RELAY_TIMEOUT_SECONDS: '3' });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => downstream.reset());

  it('never hands bytes after the end of one response to the next request on that connection', async () => {
    downstream.respond = (s, head) => {
      const path = head.split(' ')[1];
      if (path.endsWith('/evil'))
        setTimeout(
          () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreq1HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON'),
          200,
        );
      else s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`);
    };
    // One connection at most: /victim waits in the queue for the connection /evil is on.
    const evil = fetchVia(sidecar.relayPort!, '/evil');
    await waitFor('the first request at the destination', () => downstream.heads.length === 1);
    const victim = fetchVia(sidecar.relayPort!, '/victim');
    expect((await evil).body.toString()).toBe('req1');
    expect((await victim).body.toString()).toBe('/victim');
    // And with the connection idle in between: the extra answer closes it, the next request gets its own.
    const again = await fetchVia(sidecar.relayPort!, '/evil');
    expect(again.body.toString()).toBe('req1');
    await new Promise((r) => setTimeout(r, 50));
    const [a, b] = await Promise.all([fetchVia(sidecar.relayPort!, '/one'), fetchVia(sidecar.relayPort!, '/two')]);
    expect([a.body.toString(), b.body.toString()]).toEqual(['/one', '/two']);
  });

  // Stray bytes of every kind: the victim's request goes on the connection the attacker's answer came on.
  const EVIL = 'HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nSet-Cookie: session=attacker\r\nX-Pad: ';

  /** The destination answers /attack as `attack` says, anything else with its own path. */
  function answerWith(attack: (s: Socket) => void): void {
    downstream.respond = (s, head) => {
      const [method, path] = head.split(' ');
      if (path.endsWith('/attack')) attack(s);
      else s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${method === 'HEAD' ? '' : path}`);
    };
  }

  async function victimGetsItsOwn(): Promise<void> {
    const c = await RawClient.connect(sidecar.relayPort!);
    c.write(get('/innocent'));
    const r = await c.read();
    expect([r.status, r.body.toString()]).toEqual([200, '/innocent']);
    expect(headerValues(r, 'set-cookie')).toEqual([]);
    expect(headerValues(r, 'location')).toEqual([]);
  }

  const sameWrite: Array<[string, string, string]> = [
    ['a HEAD answer', 'HEAD', `HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n${EVIL}`],
    ['a 304', 'GET', `HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n${EVIL}`],
    ['a 204', 'GET', `HTTP/1.1 204 No Content\r\n\r\n${EVIL}`],
    ['a Content-Length body', 'GET', `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok${EVIL}`],
    [
      'a whole second response',
      'GET',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nContent-Length: 0\r\n\r\n',
    ],
  ];
  it.each(sameWrite)('after %s in the same write', async (_name, method, bytes) => {
    answerWith((s) => s.write(bytes));
    const c = await RawClient.connect(sidecar.relayPort!);
    c.write(`${method} /attack HTTP/1.1\r\nHost: relay.test\r\n\r\n`);
    await c.read({ noBody: method === 'HEAD' });
    await victimGetsItsOwn();
  });

  it('sent 200 ms later on the idle pooled connection', async () => {
    answerWith((s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setTimeout(() => s.write(EVIL), 200);
    });
    const c = await RawClient.connect(sidecar.relayPort!);
    c.write(get('/attack'));
    expect((await c.read()).body.toString()).toBe('ok');
    await new Promise((r) => setTimeout(r, 400));
    await victimGetsItsOwn();
  });
});

describe('relay HTTP/1.1: a caller that stalls', () => {
  const downstream = new HttpDownstream();
  let sidecar: Started;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url, RELAY_TIMEOUT_SECONDS: '1' });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });

  it("a caller that stops reading a large answer is cut after RELAY_TIMEOUT_SECONDS, counted as the caller's doing, not as a downstream timeout", async () => {
    const big = Buffer.alloc(32 * 1024 * 1024, 0x7a);
    downstream.handler = (_req, res) => res.writeHead(200, { 'content-length': String(big.length) }).end(big);
    const count = async (outcome: string) => {
      const text = await fetch(`${sidecar.managementUrl}/metrics`).then((r) => r.text());
      return Number(new RegExp(`^sidecar_relay_requests_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    };
    const [timeoutsBefore, callersBefore] = [await count('timeout'), await count('client_closed')];
    const c = await RawClient.connect(sidecar.relayPort!);
    c.socket.pause();
    c.write(get('/big'));
    await waitFor('the caller cut', async () => (await count('client_closed')) > callersBefore, { timeoutMs: 5000 });
    expect(await count('timeout')).toBe(timeoutsBefore);
    c.socket.resume();
    expect(await c.closedWithin(3000)).toBe(true);
    downstream.reset();
  });

  it('answers a request whose body stalls mid-way 408 as JSON after RELAY_TIMEOUT_SECONDS, closes it, and keeps serving', async () => {
    const c = await RawClient.connect(sidecar.relayPort!);
    const started = performance.now();
    c.write(`POST /stall HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 100\r\n\r\n${'y'.repeat(10)}`);
    expect(await c.closedWithin(4000)).toBe(true);
    expect(performance.now() - started).toBeGreaterThan(800);
    const answer = parseResponse(c.pending, true, false)?.res;
    expect(answer?.status).toBe(408);
    expect(JSON.parse(answer!.body.toString())).toMatchObject({ error: 'request_timeout' });
    expect(downstream.requests).toHaveLength(0);
    const next = await fetchVia(sidecar.relayPort!, '/next');
    expect(next.status).toBe(200);
  });
});

describe('relay HTTP/1.1: requests refused before they go anywhere', () => {
  const downstream = new HttpDownstream();
  let sidecar: Started;

  beforeAll(async () => {
    const url = await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: `${url}/webhook` });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => downstream.reset());

  it('answers an HTTP/1.1 request without Host 400 as JSON and forwards nothing (HTTP/1.0 may leave it out)', async () => {
    const c = await RawClient.connect(sidecar.relayPort!);
    c.write('GET /no-host HTTP/1.1\r\n\r\n');
    const r = await c.read();
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'bad_request', message: expect.stringContaining('Host') });
    expect(downstream.requests).toHaveLength(0);
    const old = await RawClient.connect(sidecar.relayPort!);
    old.write('GET /old HTTP/1.0\r\n\r\n');
    expect((await old.read()).status).toBe(200);
  });

  it.each(['/../x', '/%2e%2e/x', '/%2E%2E/x', '/..%2fx', '/..%5cx', '/./x', '/a/../../x', '/..;/x'])(
    'answers the dot-segment path %s 400 and never lets it out of the destination prefix',
    async (path) => {
      const c = await RawClient.connect(sidecar.relayPort!);
      c.write(get(path));
      const r = await c.read();
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'bad_request', message: expect.stringContaining('dot-segment') });
      expect(downstream.requests).toHaveLength(0);
    },
  );

  it('relays paths whose dots are not segments', async () => {
    for (const path of ['/a.b/c', '/.well-known/x', '/x?path=../../y']) {
      expect((await fetchVia(sidecar.relayPort!, path)).status).toBe(200);
    }
    expect(downstream.requests.map((r) => r.url)).toEqual(['/webhook/a.b/c', '/webhook/.well-known/x', '/webhook/x?path=../../y']);
  });
});

describe('relay HTTP/1.1: request bodies held at once (RELAY_MAX_BUFFERED_BYTES)', () => {
  const downstream = new HttpDownstream();
  let sidecar: Started;
  /** Requests to /hold/<name> are answered when release(<name>) is called. */
  const held = new Map<string, () => void>();
  const release = (name: string) => held.get(name)!();

  beforeAll(async () => {
    const url = await downstream.listen();
    // Room for one 1000-byte body; a body waits at most min(5 s, the 2 s request time-out).
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: url,
      RELAY_MAX_BODY_BYTES: '1000',
      RELAY_MAX_BUFFERED_BYTES: '1000',
      RELAY_TIMEOUT_SECONDS: '2',
    });
  });
  afterAll(async () => {
    for (const r of held.values()) r();
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => {
    downstream.reset();
    downstream.handler = (req, res) => {
      const name = req.url.split('/')[2];
      if (req.url.startsWith('/hold/')) held.set(name, () => res.end(`released ${name}`));
      else res.end(`${name}:${req.body.length}`);
    };
  });

  function post(path: string, body: Buffer, chunked = false): Promise<{ status: number; text: string; retryAfter?: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: sidecar.relayPort!,
          path,
          method: 'POST',
          agent: false,
          headers: chunked ? {} : { 'content-length': body.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString(), retryAfter: res.headers['retry-after'] }),
          );
        },
      );
      req.on('error', reject);
      if (chunked) {
        req.write(body.subarray(0, 10));
        setTimeout(() => req.end(body.subarray(10)), 50);
      } else req.end(body);
    });
  }

  it('a body with no room waits unread and goes on, whole, once room frees; a bodiless request passes meanwhile', async () => {
    const holder = post('/hold/a', Buffer.alloc(900, 0x61));
    await waitFor('the holder at downstream', () => held.has('a'));
    const waiter = post('/pass/b', Buffer.alloc(500, 0x62));
    await new Promise((r) => setTimeout(r, 300));
    expect(downstream.requests.map((r) => r.url)).toEqual(['/hold/a']);
    expect((await fetchVia(sidecar.relayPort!, '/pass/get')).body.toString()).toBe('get:0');
    release('a');
    expect(await holder).toMatchObject({ status: 200, text: 'released a' });
    expect(await waiter).toMatchObject({ status: 200, text: 'b:500' });
  });

  it.each([false, true])(
    'a body that finds no room within the wait is answered 503 busy with Retry-After, and nothing of it goes on (chunked: %s)',
    async (chunked) => {
      const holder = post('/hold/c', Buffer.alloc(900, 0x61));
      await waitFor('the holder at downstream', () => held.has('c'));
      const started = performance.now();
      const refused = await post('/pass/d', Buffer.alloc(500, 0x62), chunked);
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.text)).toMatchObject({ error: 'busy', message: expect.stringContaining('RELAY_MAX_BUFFERED_BYTES') });
      expect(refused.retryAfter).toBe('1');
      expect(performance.now() - started).toBeGreaterThan(1500);
      expect(downstream.requests.map((r) => r.url)).toEqual(['/hold/c']);
      release('c');
      await holder;
      held.clear();
    },
  );
});

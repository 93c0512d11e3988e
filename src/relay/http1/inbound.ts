import { STATUS_CODES } from 'node:http';
import { createServer, Server, Socket } from 'node:net';
import { headerNameIs, otherCoding } from '../forwarding';
import { Deadlines, Expiring } from './deadlines';
import { createParser, methodName, Parser, REQUEST } from './llhttp';

/**
 * The relay's server side: HTTP/1.1 on plain sockets, parsed by llhttp. A request is
 * handed over once its whole body has arrived (bodies are bounded by `maxBodyBytes`);
 * requests pipelined on one connection are answered one after the other, in order.
 */

export interface InboundOptions {
  maxBodyBytes: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveMs: number;
  /** A request that stops arriving for this long is answered 408. */
  requestTimeoutMs: number;
}

export interface InboundRequest {
  readonly method: string;
  readonly url: string;
  /** [name, value, ...] as on the wire (values Latin-1). */
  readonly rawHeaders: string[];
  /** null when the request had no body bytes. */
  readonly body: Buffer | null;
  readonly remoteAddress: string | undefined;
}

export interface InboundHandler {
  /** A whole request arrived: answer it through `reply`, which may be used until `reply.end()`. */
  request(req: InboundRequest, reply: Reply): void;
  /** A request's body is (or says it will be) over `maxBodyBytes`: answer through `reply`; the connection closes after. */
  tooLarge(declared: string | undefined, reply: Reply): void;
}

/** How the body after a head is delimited. */
export const enum Framing {
  /** Content-Length is among the headers given, or there is no body (HEAD, 204, 304). */
  Given,
  /** Length unknown: chunked to HTTP/1.1 callers, the connection's end to HTTP/1.0 ones. */
  Stream,
}

interface Pending {
  method: string;
  url: string;
  rawHeaders: string[];
  chunks: Buffer[];
  size: number;
  keepAlive: boolean;
  http10: boolean;
  tooLarge: boolean;
  declared: string | undefined;
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/** The answer to one request. Writes go straight to the caller's socket. */
export class Reply {
  headersSent = false;
  finished = false;
  /** Set by the handler: the caller went away before `end()`. */
  onAbort: (() => void) | null = null;
  /** Set by the handler: called once when the answer is over, however it ended. */
  onDone: (() => void) | null = null;
  private chunked = false;

  constructor(
    private readonly conn: InboundConnection,
    private readonly socket: Socket,
    /** Whether the connection stays open after this answer. */
    public keepAlive: boolean,
    private readonly http10: boolean,
  ) {}

  /** `headerLines`: "name: value\r\n" per header, Latin-1, without hop-by-hop ones. */
  head(status: number, message: string, headerLines: string, framing: Framing): void {
    this.headersSent = true;
    let head = `HTTP/1.1 ${status} ${message}\r\n${headerLines}`;
    if (framing === Framing.Stream) {
      if (this.http10) this.keepAlive = false;
      else {
        this.chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      }
    }
    // A caller that knows when an idle connection closes does not send on one being closed.
    if (!this.keepAlive) head += 'connection: close\r\n';
    else head += this.conn.keepAliveHeader;
    this.socket.write(head + '\r\n', 'latin1');
  }

  /** Writes from here to `uncork()` leave in one system call. */
  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  /** false: the caller's buffer is full; wait for `onDrain`. */
  write(chunk: Buffer): boolean {
    const s = this.socket;
    if (s.destroyed) return true;
    if (!this.chunked) return s.write(chunk);
    if (chunk.length === 0) return true;
    s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    return s.write('\r\n', 'latin1');
  }

  onDrain(resume: () => void): void {
    this.socket.once('drain', resume);
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.chunked && !this.socket.destroyed) this.socket.write('0\r\n\r\n', 'latin1');
    this.conn.replied(this);
    this.over();
  }

  /** The caller closed the connection before the answer was complete. */
  aborted(): void {
    if (this.finished) return;
    this.finished = true;
    this.onAbort?.();
    this.over();
  }

  private over(): void {
    const done = this.onDone;
    this.onDone = null;
    done?.();
  }

  /** A JSON error answer: `{"error": code, "message": text}`. After a head went out, the connection is cut instead. */
  json(status: number, error: string, message: string): void {
    if (this.headersSent) return this.destroy();
    this.send(status, STATUS_CODES[status] ?? '', 'application/json', Buffer.from(JSON.stringify({ error, message })));
  }

  /** A whole answer of the relay's own, in one write. */
  send(status: number, message: string, contentType: string, body: Buffer): void {
    this.socket.cork();
    this.head(status, message, `content-type: ${contentType}\r\ncontent-length: ${body.length}\r\n`, Framing.Given);
    this.socket.write(body);
    this.end();
    this.socket.uncork();
  }

  /** Cuts the connection: what the caller got so far is all it gets. */
  destroy(): void {
    this.finished = true;
    this.socket.destroy();
    this.over();
  }
}

class InboundConnection implements Expiring {
  deadline: number;
  readonly keepAliveHeader: string;
  private readonly parser: Parser;
  /** Headers in, body arriving. */
  private parsing: Pending | null = null;
  /** Complete requests waiting for the one before them to be answered. */
  private readonly queue: Pending[] = [];
  private current: Reply | null = null;
  /** Bytes of a request have arrived since the last answer. */
  private receiving = false;
  /** Read nothing more: the connection closes once the queue is answered. */
  private discarding = false;
  /** The connection's own answer (400, 501), due once the requests before it are answered. */
  private deferred: (() => void) | null = null;
  /** The caller half-closed: it sends nothing more; what it asked is answered, then the connection ends. */
  private peerEnded = false;
  /** Idle time ran out while an answer was still leaving: it gets one more request timeout to be read. */
  private closingSoon = false;

  constructor(
    private readonly server: InboundServer,
    readonly socket: Socket,
  ) {
    this.keepAliveHeader = server.keepAliveHeader;
    socket.setNoDelay(true);
    server.deadlines.add(this);
    this.deadline = server.deadlines.now + server.options.keepAliveMs;
    this.parser = createParser(REQUEST, {
      headersComplete: (major, minor, headers, method, url, _s, _m, upgrade, keepAlive) =>
        this.onHeaders(methodName(method), url ?? '/', headers ?? [], major === 1 && minor === 0, upgrade, keepAlive),
      body: (chunk) => this.onBody(chunk),
      messageComplete: () => this.onComplete(),
    });
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
  }

  /** Cuts an answer under way; otherwise reads nothing more and closes once what was written is out. */
  shutdown(): void {
    if (this.current !== null) return void this.socket.destroy();
    this.stopReading();
    this.queue.length = 0;
    this.socket.destroySoon();
  }

  get idle(): boolean {
    return this.current === null && !this.receiving && this.queue.length === 0;
  }

  private onData(d: Buffer): void {
    if (this.discarding) return;
    if (!this.receiving && this.current === null) {
      this.receiving = true;
      this.deadline = this.server.deadlines.now + this.server.options.requestTimeoutMs;
    }
    const r = this.parser.execute(d);
    if (typeof r !== 'number') this.malformed(r.code);
  }

  private onHeaders(method: string, url: string, rawHeaders: string[], http10: boolean, upgrade: boolean, keepAlive: boolean): void {
    if (this.discarding) return;
    if (upgrade) return this.malformed('UPGRADE_NOT_SUPPORTED');
    // Only origin-form ("/path?query"): an absolute URL would reach the destination as the
    // request line's target, Host of its choosing included; "*" has nothing to relay to.
    if (url.charCodeAt(0) !== 47 /* / */) return this.malformed('NOT_ORIGIN_FORM');
    let declared: string | undefined;
    let expectContinue = false;
    let hosts = 0;
    let coded = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      if (headerNameIs(name, 'content-length')) declared = rawHeaders[i + 1];
      else if (headerNameIs(name, 'host')) hosts++;
      else if (headerNameIs(name, 'transfer-encoding')) coded ||= otherCoding(rawHeaders[i + 1]) !== null;
      else if (headerNameIs(name, 'expect') && rawHeaders[i + 1].toLowerCase() === '100-continue') expectContinue = true;
    }
    if (hosts > 1) return this.malformed('DUPLICATE_HOST');
    if (coded) return this.malformed('TRANSFER_CODING_NOT_SUPPORTED');
    const p: Pending = { method, url, rawHeaders, chunks: [], size: 0, keepAlive, http10, tooLarge: false, declared };
    if (declared !== undefined && Number(declared) > this.server.options.maxBodyBytes) return this.refuse(p);
    // The caller waits for this before it sends the body; with answers still due ahead of it, it sends after its own wait.
    if (expectContinue && !http10 && this.current === null && this.queue.length === 0) this.socket.write(CONTINUE, 'latin1');
    this.parsing = p;
  }

  private onBody(chunk: Buffer): void {
    const p = this.parsing;
    if (p === null) return;
    p.size += chunk.length;
    if (p.size > this.server.options.maxBodyBytes) return this.refuse(p);
    p.chunks.push(chunk);
  }

  private onComplete(): void {
    const p = this.parsing;
    if (p === null) return;
    this.parsing = null;
    this.receiving = false;
    this.queue.push(p);
    if (this.current === null) this.next();
    // One request waits behind the one being answered, no more: pipelined requests are not
    // read (bodies and all) faster than they are answered. Reading resumes in next().
    else this.socket.pause();
  }

  /** Over the body limit: nothing more is read; the request is answered in its turn, then the connection closes. */
  private refuse(p: Pending): void {
    this.parsing = null;
    p.tooLarge = true;
    p.chunks = [];
    this.stopReading();
    this.queue.push(p);
    if (this.current === null) this.next();
  }

  private stopReading(): void {
    this.discarding = true;
    this.receiving = false;
    this.socket.pause();
  }

  private next(): void {
    const p = this.queue.shift();
    if (this.queue.length === 0 && !this.discarding && !this.peerEnded) this.socket.resume();
    if (p === undefined) {
      const answer = this.deferred;
      this.deferred = null;
      if (answer !== null) answer();
      else if (this.discarding) this.socket.destroySoon();
      else if (this.peerEnded) this.socket.end();
      else this.deadline = this.server.deadlines.now + (this.receiving ? this.server.options.requestTimeoutMs : this.server.options.keepAliveMs);
      return;
    }
    const keepAlive = p.keepAlive && !p.tooLarge && !this.server.draining;
    const reply = new Reply(this, this.socket, keepAlive, p.http10);
    this.current = reply;
    this.deadline = 0;
    if (p.tooLarge) return this.server.handler.tooLarge(p.declared, reply);
    const body = p.chunks.length === 0 ? null : p.chunks.length === 1 ? p.chunks[0] : Buffer.concat(p.chunks, p.size);
    this.server.handler.request({ method: p.method, url: p.url, rawHeaders: p.rawHeaders, body, remoteAddress: this.socket.remoteAddress }, reply);
  }

  /** Called by a reply when it ends. */
  replied(reply: Reply): void {
    if (reply !== this.current) return;
    this.current = null;
    if (!reply.keepAlive) {
      this.stopReading();
      this.queue.length = 0;
      this.socket.destroySoon();
      return;
    }
    this.next();
  }

  /** Malformed input: answered 400 (431 for oversized headers) in its turn, then the connection closes. */
  private malformed(code: string): void {
    this.parsing = null;
    this.stopReading();
    const upgrade = code === 'UPGRADE_NOT_SUPPORTED';
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : upgrade ? 501 : 400;
    const answer = () => upgrade
      ? this.answerAndClose(501, 'not_implemented', 'protocol upgrades (and CONNECT) are not relayed')
      : code === 'TRANSFER_CODING_NOT_SUPPORTED'
        ? this.answerAndClose(501, 'not_implemented', 'transfer codings other than chunked are not relayed (use Content-Encoding)')
      : code === 'NOT_ORIGIN_FORM'
        ? this.answerAndClose(400, 'bad_request', 'the request target must be a path (origin-form); absolute URLs and * are not relayed')
        : this.answerAndClose(status, 'bad_request', `malformed HTTP request (${code})`);
    if (this.current === null && this.queue.length === 0) answer();
    else this.deferred = answer;
  }

  /** The deadline passed: a request that stopped arriving is answered 408; an idle connection is closed. */
  expire(): void {
    if (this.current !== null) return;
    if (this.receiving || this.parsing !== null) {
      this.stopReading();
      this.parsing = null;
      this.answerAndClose(408, 'request_timeout', `the request did not arrive within ${this.server.options.requestTimeoutMs / 1000} s`);
      return;
    }
    this.closeIdle();
  }

  /**
   * Closes a connection with nothing to answer. The end of the last answer may still be
   * leaving (a caller that reads slowly): it is let out, for one more request timeout,
   * before the connection is cut.
   */
  closeIdle(): void {
    if (this.socket.writableLength === 0 || this.closingSoon) return void this.socket.destroy();
    this.closingSoon = true;
    this.stopReading();
    this.socket.end();
    this.deadline = this.server.deadlines.now + this.server.options.requestTimeoutMs;
  }

  /** The caller half-closed: a request cut short is dropped; those complete are answered, then the connection ends. */
  private onEnd(): void {
    this.peerEnded = true;
    this.parsing = null;
    this.receiving = false;
    if (this.current === null && this.queue.length === 0 && this.deferred === null) this.socket.end();
  }

  /** An answer of the connection's own (not a request's), after which it closes. */
  private answerAndClose(status: number, error: string, message: string): void {
    const reply = new Reply(this, this.socket, false, false);
    this.current = reply;
    reply.json(status, error, message);
  }

  private onClose(): void {
    this.server.deadlines.delete(this);
    this.parser.close();
    this.server.connections.delete(this);
    const reply = this.current;
    this.current = null;
    reply?.aborted();
  }
}

export class InboundServer {
  readonly connections = new Set<InboundConnection>();
  readonly deadlines = new Deadlines();
  readonly net: Server;
  draining = false;
  readonly keepAliveHeader: string;

  constructor(
    readonly options: InboundOptions,
    readonly handler: InboundHandler,
  ) {
    this.keepAliveHeader = `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(options.keepAliveMs / 1000)}\r\n`;
    // Half-open allowed: a caller that half-closes after its request still gets the answer.
    this.net = createServer({ allowHalfOpen: true }, (socket) => this.connections.add(new InboundConnection(this, socket)));
  }

  listen(port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting; connections close after the answer they owe. Resolves once all are gone. */
  close(): Promise<void> {
    this.draining = true;
    return new Promise((r) => this.net.close(() => r()));
  }

  closeIdleConnections(): void {
    for (const c of this.connections) if (c.idle) c.closeIdle();
  }

  /** Cuts answers still under way; an answer already complete is let out before its connection closes. */
  closeAllConnections(): void {
    for (const c of this.connections) c.shutdown();
  }
}

import { connect as netConnect, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { headerNameIs, otherTransferCoding } from '../forwarding';
import { Deadlines, Expiring } from './deadlines';
import { createParser, Parser, RESPONSE } from './llhttp';

/**
 * The relay's client side: keep-alive HTTP/1.1 connections to each destination, at most
 * `maxConnections` per destination, requests beyond that waiting in order for one to free.
 * A request goes out as one pre-serialised head and the body in a single write; the
 * response is parsed by llhttp and handed to the caller's handler as it arrives.
 */

export interface Target {
  /** Where to connect. */
  readonly protocol: string;
  readonly hostname: string;
  readonly port: number;
  /** The pool key. */
  readonly origin: string;
}

export interface ResponseHandler {
  /** The final response's head (1xx are skipped). `rawHeaders` is [name, value, ...] as on the wire. */
  onHead(status: number, statusMessage: string, rawHeaders: string[]): void;
  /** A piece of the body; false asks for no more until `Exchange.resume()`. */
  onBody(chunk: Buffer): boolean;
  onEnd(): void;
  /** Called at most once, and never after onEnd. */
  onError(err: UpstreamError): void;
  /** Around each read from the destination: what one read produces can leave in one write. */
  readStart(): void;
  readEnd(): void;
}

/** caller: the caller read nothing of the answer for the timeout, while the destination waited on it. */
export type UpstreamFailure = 'connect' | 'timeout' | 'closed' | 'protocol' | 'caller';

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly kind: UpstreamFailure,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface UpstreamOptions {
  maxConnections: number;
  /** No byte from the destination for this long while a request is out: the request fails as a timeout. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** An idle connection is closed after this long (below the usual 5 s of servers, so that they rarely close it first). */
  keepAliveMs: number;
}

/** One request's trip: cancel it with `abort()`. */
export class Exchange {
  conn: Connection | null = null;
  finished = false;

  constructor(
    readonly head: string,
    readonly body: Buffer | null,
    readonly bodyless: boolean,
    readonly handler: ResponseHandler,
    readonly pool: OriginPool,
  ) {}

  /** The caller is gone: the connection is closed (its response would be read for nobody). */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.conn !== null) this.conn.socket.destroy();
    else this.pool.dequeue(this);
  }

  resume(): void {
    this.conn?.resumeForCaller();
  }

  fail(err: UpstreamError): void {
    if (this.finished) return;
    this.finished = true;
    this.handler.onError(err);
  }
}

class Connection implements Expiring {
  deadline: number;
  readonly socket: Socket;
  private readonly parser: Parser;
  exchange: Exchange | null = null;
  private informational = false;
  private keepAlive = false;
  /** The response completed during the read being parsed: back to the pool once that read is done. */
  private releaseAfterRead = false;
  /** Not read while the caller's buffer is full: a time-out now is the caller's, not the destination's. */
  private pausedForCaller = false;
  /** How long this connection may sit idle: ours, or less when the destination says it closes sooner. */
  private idleMs: number;

  constructor(
    private readonly pool: OriginPool,
    target: Target,
    private readonly options: UpstreamOptions,
    private readonly deadlines: Deadlines,
  ) {
    const port = target.port;
    this.socket = target.protocol === 'https:'
      ? tlsConnect({ host: target.hostname, port, servername: isIp(target.hostname) ? undefined : target.hostname, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: target.hostname, port, noDelay: true });
    deadlines.add(this);
    this.deadline = deadlines.now + options.connectTimeoutMs;
    this.idleMs = options.keepAliveMs;
    this.parser = createParser(RESPONSE, {
      headersComplete: (_maj, _min, headers, _m, _u, status, message, _upgrade, keepAlive) => this.onHead(status ?? 0, message ?? '', headers ?? [], keepAlive),
      body: (chunk) => {
        if (this.exchange !== null && !this.exchange.handler.onBody(chunk)) {
          this.socket.pause();
          this.pausedForCaller = true;
        }
      },
      messageComplete: () => this.onComplete(),
    });
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.failExchange(failure(e, this.socket.connecting)));
    this.socket.on('close', () => this.onClose());
  }

  start(exchange: Exchange): void {
    if (this.exchange !== null) throw new Error('a pooled connection was given a second request');
    this.exchange = exchange;
    this.pausedForCaller = false;
    exchange.conn = this;
    this.informational = false;
    // A connection still connecting keeps its connect deadline until markReady.
    if (!this.socket.connecting) this.deadline = this.deadlines.now + this.options.timeoutMs;
    const s = this.socket;
    s.cork();
    s.write(exchange.head, 'latin1');
    if (exchange.body !== null && exchange.body.length > 0) s.write(exchange.body);
    s.uncork();
  }

  private onData(d: Buffer): void {
    // While a response is due, the timeout counts from the last byte the destination sent.
    if (this.exchange !== null) this.deadline = this.deadlines.now + this.options.timeoutMs;
    const handler = this.exchange?.handler;
    handler?.readStart();
    const r = this.parser.execute(d);
    handler?.readEnd();
    if (typeof r !== 'number') {
      this.failExchange(new UpstreamError(`malformed response from the destination (${r.code})`, 'protocol', r.code));
      this.socket.destroy();
    }
    // Only now, with the whole read parsed: bytes after the end of the response in the same
    // read were no answer to anything (and closed the connection in onHead), and must never
    // be taken for the response to the next request on it.
    if (this.releaseAfterRead) {
      this.releaseAfterRead = false;
      if (!this.socket.destroyed && this.exchange === null) this.pool.release(this);
    }
  }

  private onHead(status: number, message: string, headers: string[], keepAlive: boolean): number {
    const ex = this.exchange;
    if (ex === null || ex.finished) {
      // A response nobody asked for (a destination answering one request twice, or a
      // request it split in two): the connection cannot be trusted to line up any more.
      this.releaseAfterRead = false;
      this.socket.destroy();
      return 1;
    }
    if (status < 200) {
      // 100 Continue and other interim answers: the final response follows on this connection.
      this.informational = true;
      return 1;
    }
    const coding = otherTransferCoding(headers);
    if (coding !== null) {
      // Its chunks would be taken off and the coded bytes passed on as if they were the body.
      this.failExchange(new UpstreamError(`the destination answered with the transfer coding ${coding}, which is not relayed`, 'protocol'));
      this.socket.destroy();
      return 1;
    }
    this.keepAlive = keepAlive;
    if (keepAlive) this.idleMs = idleTimeout(headers, this.options.keepAliveMs);
    // From here the response may take as long as it needs between pieces, up to the timeout.
    ex.handler.onHead(status, message, headers);
    return ex.bodyless ? 1 : 0;
  }

  private onComplete(): void {
    if (this.informational) {
      this.informational = false;
      return;
    }
    const ex = this.exchange;
    if (ex === null) return; // the end of a response nobody asked for: closed in onHead
    this.exchange = null;
    ex.conn = null;
    if (this.keepAlive && this.idleMs > 0 && !this.socket.destroyed) {
      this.deadline = this.deadlines.now + this.idleMs;
      // A slow caller may have paused it; the next response on it must be read.
      this.socket.resume();
      this.releaseAfterRead = true;
    } else {
      this.socket.destroy();
    }
    if (ex !== null && !ex.finished) {
      ex.finished = true;
      ex.handler.onEnd();
    }
  }

  private onEnd(): void {
    // A body that ends with the connection completes here.
    if (this.exchange !== null) this.parser.finish();
    this.failExchange(new UpstreamError('the destination closed the connection before the response was complete', 'closed'));
    this.socket.destroy();
  }

  /** The caller's buffer drained: read on, and the timeout counts afresh. */
  resumeForCaller(): void {
    this.pausedForCaller = false;
    if (this.exchange !== null) this.deadline = this.deadlines.now + this.options.timeoutMs;
    this.socket.resume();
  }

  expire(): void {
    if (this.exchange !== null && this.pausedForCaller) {
      this.failExchange(new UpstreamError(`the caller read nothing of the answer for ${this.options.timeoutMs / 1000} s`, 'caller'));
    } else if (this.exchange !== null) {
      const connecting = this.socket.connecting;
      this.failExchange(connecting
        ? new UpstreamError(`no connection to the destination within ${this.options.connectTimeoutMs / 1000} s`, 'connect', 'ETIMEDOUT')
        : new UpstreamError(`the destination sent nothing for ${this.options.timeoutMs / 1000} s`, 'timeout'));
    }
    this.socket.destroy();
  }

  private onClose(): void {
    this.deadlines.delete(this);
    this.failExchange(new UpstreamError('the connection to the destination closed', 'closed'));
    this.parser.close();
    this.pool.forget(this);
  }

  private failExchange(err: UpstreamError): void {
    const ex = this.exchange;
    if (ex === null) return;
    this.exchange = null;
    ex.conn = null;
    ex.fail(err);
  }

  /** Connected: from now on the response's timeout applies. */
  markReady(): void {
    this.deadline = this.deadlines.now + (this.exchange !== null ? this.options.timeoutMs : this.options.keepAliveMs);
  }
}

/** Connections to one destination. */
export class OriginPool {
  private readonly idle: Connection[] = [];
  private readonly queue: Exchange[] = [];
  private open = 0;

  constructor(
    private readonly target: Target,
    private readonly options: UpstreamOptions,
    private readonly deadlines: Deadlines,
  ) {}

  send(exchange: Exchange): void {
    let conn = this.idle.pop();
    while (conn !== undefined && conn.socket.destroyed) conn = this.idle.pop();
    if (conn !== undefined) return conn.start(exchange);
    if (this.open < this.options.maxConnections) {
      this.open++;
      const fresh = new Connection(this, this.target, this.options, this.deadlines);
      fresh.socket.once('connect', () => fresh.markReady());
      fresh.socket.once('secureConnect', () => fresh.markReady());
      return fresh.start(exchange);
    }
    this.queue.push(exchange);
  }

  /** A connection finished its exchange and may take the next one. */
  release(conn: Connection): void {
    const next = this.queue.shift();
    if (next !== undefined) conn.start(next);
    else this.idle.push(conn);
  }

  forget(conn: Connection): void {
    this.open--;
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    // Room for a new connection: the oldest waiting request takes it.
    const next = this.queue.shift();
    if (next !== undefined) this.send(next);
  }

  dequeue(exchange: Exchange): void {
    const i = this.queue.indexOf(exchange);
    if (i !== -1) this.queue.splice(i, 1);
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy();
    for (const ex of this.queue.splice(0)) ex.fail(new UpstreamError('the relay is shutting down', 'closed'));
  }
}

/** Every destination's pool, made on first use. */
export class UpstreamClient {
  private readonly pools = new Map<string, OriginPool>();
  private readonly deadlines = new Deadlines();
  private closed = false;

  constructor(private readonly options: UpstreamOptions) {}

  /**
   * Sends `head` (request line and headers, ending in the blank line, Latin-1) and `body`.
   * `bodyless`: the response has no body whatever its headers say (a request with HEAD).
   */
  request(target: Target, head: string, body: Buffer | null, bodyless: boolean, handler: ResponseHandler): Exchange {
    let pool = this.pools.get(target.origin);
    if (pool === undefined) this.pools.set(target.origin, (pool = new OriginPool(target, this.options, this.deadlines)));
    const exchange = new Exchange(head, body, bodyless, handler, pool);
    if (this.closed) exchange.fail(new UpstreamError('the relay is shutting down', 'closed'));
    else pool.send(exchange);
    return exchange;
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) pool.close();
  }
}

/**
 * How long a kept-alive connection may idle: `ours`, or a second less than the destination's
 * `Keep-Alive: timeout=N` when that is shorter, so that the relay closes an idle connection
 * before the destination does instead of sending a request into one being closed.
 */
export function idleTimeout(rawHeaders: string[], ours: number): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length !== 10 || !headerNameIs(rawHeaders[i], 'keep-alive')) continue;
    const m = /(?:^|[\s,;])timeout\s*=\s*(\d+)/i.exec(rawHeaders[i + 1]);
    if (m !== null) return Math.max(0, Math.min(ours, Number(m[1]) * 1000 - 1000));
  }
  return ours;
}

function failure(e: NodeJS.ErrnoException, connecting: boolean): UpstreamError {
  return new UpstreamError(e.message, connecting ? 'connect' : 'closed', e.code);
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

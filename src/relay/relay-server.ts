import { Injectable, Logger, OnApplicationShutdown, Optional } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Agent, Dispatcher } from 'undici';
import type { RelayConfig, ServerConfig, SidecarConfig } from '../config/sidecar-config';
import { RoundTrips } from '../health-check/round-trips';
import { redactHeaders } from '../logging/json-logger';
import { DispatchRouter } from './dispatch/dispatch-router';
import { Route, singleRoute } from './dispatch/dispatch-table';
import { applyHeaderPatches } from './dispatch/header-patches';
import { clientAddress, destinationPath, forwardRequestHeaders, forwardResponseHeaders, headerNameIs } from './forwarding';
import { RelayMetrics } from './relay-metrics';
import { Receipt, Spool } from './spool/spool';

const HEALTH_HEADER = 'x-health-check-id';
const OWN_EVENT = Buffer.from('{"received":"own"}');
const FOREIGN_EVENT = Buffer.from('{"received":"foreign"}');

/**
 * The data plane: a bare node:http server (no router, no body parser) that relays every
 * request to its destination through a keep-alive undici pool. Bodies are collected as
 * the raw bytes that arrived and sent on unchanged; responses stream back.
 */
@Injectable()
export class RelayServer implements OnApplicationShutdown {
  private readonly logger = new Logger('Relay');
  private readonly config: RelayConfig;
  private readonly server: ServerConfig;
  private readonly http: Server;
  private readonly agent: Agent;
  /** Without dispatch rules every request takes this one route. */
  private readonly single: Route;
  private readonly router: DispatchRouter | null;
  /** In spool mode, where events go instead of downstream. */
  private readonly spool: Spool | null;
  /** Decided once: the hot path pays for a per-request line only when LOG_LEVEL=debug. */
  private readonly traceRequests: boolean;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    configService: ConfigService<SidecarConfig, true>,
    private readonly roundTrips: RoundTrips,
    private readonly metrics: RelayMetrics,
    @Optional() router?: DispatchRouter,
    @Optional() spool?: Spool,
  ) {
    this.config = configService.get('relay', { infer: true })!;
    this.server = configService.get('server', { infer: true });
    this.traceRequests = configService.get('log', { infer: true }).level === 'debug';
    this.single = singleRoute(this.config.downstreamUrl);
    this.router = router ?? null;
    this.spool = spool ?? null;
    this.agent = new Agent({
      connections: this.config.maxConnections,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.config.timeoutMs,
      bodyTimeout: this.config.timeoutMs,
      connect: { timeout: Math.min(10_000, this.config.timeoutMs) },
    });
    this.http = createServer({ keepAliveTimeout: 5_000, requestTimeout: this.config.timeoutMs, headersTimeout: Math.min(this.config.timeoutMs, 60_000) },
      (req, res) => this.handle(req, res));
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.rejectMalformed(err, socket));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.server.relayPort, this.server.listenHost, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
  }

  get listening(): boolean {
    return this.http.listening;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** The port actually bound (differs from the setting when it is 0 in tests). */
  get port(): number {
    const addr = this.http.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /**
   * Stops accepting, lets requests in flight finish for up to `timeoutMs`, then closes
   * whatever is left. Idle keep-alive connections are closed at once.
   */
  async drain(timeoutMs: number): Promise<{ unfinished: number }> {
    if (!this.http.listening) return { unfinished: 0 };
    const closed = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeIdleConnections();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    const unfinished = this.inFlight;
    this.http.closeAllConnections();
    await closed;
    return { unfinished };
  }

  async onApplicationShutdown(): Promise<void> {
    // The spool's worker stops between events while the port drains; the spool's files
    // close only once every request in flight has been answered, so all accepted is on disk.
    await Promise.all([this.drain(this.server.shutdownTimeoutMs), this.spool?.stopDelivery(this.server.shutdownTimeoutMs)]);
    await this.spool?.close();
    await this.agent.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // One pass over the raw list: reading req.headers would build an object of every header.
    const raw = req.rawHeaders;
    let declared = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (headerNameIs(name, HEALTH_HEADER)) return this.interceptHealthEvent(req, res, raw[i + 1]);
      if (headerNameIs(name, 'content-length')) declared = Number(raw[i + 1]);
    }
    if (declared > this.config.maxBodyBytes) return this.tooLarge(req, res);

    this.inFlight++;
    let exchange: Exchange | null = null;
    res.once('close', () => {
      this.finished();
      exchange?.clientClosed();
    });

    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.config.maxBodyBytes) {
        req.removeAllListeners('data');
        req.removeAllListeners('end');
        this.tooLarge(req, res);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      if (this.spool === null) exchange = this.forward(req, res, body);
      else this.store(req, res, body);
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, body: Buffer | null): Exchange | null {
    const route = this.router === null ? this.single : this.router.route(req.rawHeaders);
    const dest = route.destination;
    if (dest === null) {
      this.noDestination(res);
      return null;
    }
    if (this.traceRequests) this.trace(req, route, 'relaying');
    const headers = forwardRequestHeaders(req.rawHeaders, {
      destinationHost: route.keepHost ? (req.headers.host ?? dest.host) : dest.host,
      clientAddress: clientAddress(req.socket.remoteAddress),
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    const exchange = new Exchange(res, this, performance.now());
    this.agent.dispatch(
      {
        origin: dest.origin,
        path: destinationPath(dest.url, req.url ?? '/'),
        method: req.method as Dispatcher.HttpMethod,
        headers,
        body,
      },
      exchange,
    );
    return exchange;
  }

  private noDestination(res: ServerResponse): void {
    this.metrics.count('no_destination');
    answer(res, 503, 'no_destination', this.router === null
      ? 'no DOWNSTREAM_SERVICE_URL is configured; this sidecar only receives health-check events'
      : 'no dispatch rule matched and no default destination is configured (dispatch default or DOWNSTREAM_SERVICE_URL)');
  }

  /** Spool mode: the route is chosen now (dispatch applies), the event goes to disk, the caller gets 202 once it is there. */
  private store(req: IncomingMessage, res: ServerResponse, body: Buffer | null): void {
    const route = this.router === null ? this.single : this.router.route(req.rawHeaders);
    if (route.destination === null) return this.noDestination(res);
    if (this.traceRequests) this.trace(req, route, 'spooling');
    const startedAt = performance.now();
    this.spool!.accept({ method: req.method!, url: req.url ?? '/', rawHeaders: req.rawHeaders, client: clientAddress(req.socket.remoteAddress), body, route })
      .then(
        (receipt) => this.answerReceipt(res, receipt, startedAt),
        (e: Error) => this.answerReceipt(res, { kind: 'unavailable', reason: e.message }, startedAt),
      );
  }

  private answerReceipt(res: ServerResponse, receipt: Receipt, startedAt: number): void {
    const seconds = (performance.now() - startedAt) / 1000;
    switch (receipt.kind) {
      case 'stored':
      case 'duplicate': {
        this.metrics.spoolAnswered('spooled', 202, seconds);
        const body = `{"id":"${receipt.id}"}`;
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
        return;
      }
      case 'full':
        this.metrics.spoolAnswered('spool_full', 507, seconds);
        return answer(res, 507, 'spool_full', `the spool holds ${receipt.bytes} bytes of its ${receipt.limit} (SPOOL_MAX_BYTES): nothing was stored; try again later`);
      case 'unavailable':
        this.metrics.spoolAnswered('spool_unavailable', 503, seconds);
        return answer(res, 503, 'spool_unavailable', `nothing was stored: ${receipt.reason}`);
    }
  }

  private trace(req: IncomingMessage, route: Route, msg: 'relaying' | 'spooling'): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    // The query may carry a token: only the path is logged.
    this.logger.debug({
      msg,
      method: req.method,
      path: q === -1 ? url : url.slice(0, q),
      destination: route.destination!.origin,
      rule: this.router === null ? undefined : route.name,
      headers: redactHeaders(req.headers),
    });
  }

  /** Called by an exchange when it ends, for metrics and the one log line an error gets. */
  completed(status: number, startedAt: number): void {
    this.metrics.relayed(status, (performance.now() - startedAt) / 1000);
  }

  abandoned(): void {
    this.metrics.count('client_closed');
  }

  failed(res: ServerResponse, err: Error, startedAt: number): void {
    const code = (err as { code?: string }).code;
    const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
    const outcome = timedOut ? 'timeout' : 'unreachable';
    this.metrics.failed(outcome, (performance.now() - startedAt) / 1000);
    this.logger.warn({ msg: 'relay to downstream failed', outcome, reason: err.message, code, headersSent: res.headersSent });
    if (res.headersSent) {
      res.destroy(err);
    } else if (timedOut) {
      answer(res, 504, 'downstream_timeout', `downstream sent no response within ${this.config.timeoutMs / 1000} s`);
    } else {
      answer(res, 502, 'downstream_unreachable', `downstream could not be reached: ${err.message}`);
    }
  }

  private interceptHealthEvent(req: IncomingMessage, res: ServerResponse, id: string): void {
    req.resume();
    req.once('end', () => {
      const own = this.roundTrips.receive(id);
      this.metrics.count('health_event');
      const body = own ? OWN_EVENT : FOREIGN_EVENT;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  }

  private tooLarge(req: IncomingMessage, res: ServerResponse): void {
    this.metrics.count('too_large');
    this.logger.warn({ msg: 'request body over RELAY_MAX_BODY_BYTES', limit: this.config.maxBodyBytes, declared: req.headers['content-length'] });
    res.setHeader('connection', 'close');
    answer(res, 413, 'payload_too_large', `request body is over the limit of ${this.config.maxBodyBytes} bytes`);
    // Stop reading: the connection closes after the answer, so nothing more is buffered.
    res.once('finish', () => req.destroy());
  }

  private rejectMalformed(err: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({ error: 'bad_request', message: `malformed HTTP request (${err.code ?? 'parse error'})` });
    socket.end(`HTTP/1.1 ${status} ${status === 400 ? 'Bad Request' : status === 408 ? 'Request Timeout' : 'Request Header Fields Too Large'}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }

  private finished(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** A JSON error answer: `{"error": code, "message": text}`. */
function answer(res: ServerResponse, status: number, error: string, message: string): void {
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ error, message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** One request's trip to the destination and back, as an undici dispatch handler. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private done = false;
  private status = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly relay: RelayServer,
    private readonly startedAt: number,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode < 200) return;
    this.status = statusCode;
    this.res.writeHead(statusCode, statusMessage, forwardResponseHeaders(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.done = true;
    this.res.end();
    this.relay.completed(this.status, this.startedAt);
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    this.done = true;
    this.relay.failed(this.res, err, this.startedAt);
  }

  /** The caller went away: stop the trip to downstream too, so no socket is held for nobody. */
  clientClosed(): void {
    if (this.done) return;
    if (this.res.writableFinished) return;
    this.done = true;
    this.relay.abandoned();
    this.controller?.abort(new Error('client closed the connection'));
  }
}

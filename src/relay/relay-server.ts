import { Injectable, Logger, OnApplicationShutdown, Optional } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { RelayConfig, ServerConfig, SidecarConfig } from '../config/sidecar-config';
import { RoundTrips } from '../health-check/round-trips';
import { redactHeaders } from '../logging/json-logger';
import { DispatchRouter } from './dispatch/dispatch-router';
import { Route, singleRoute } from './dispatch/dispatch-table';
import { applyHeaderPatches } from './dispatch/header-patches';
import { clientAddress, destinationPath, forwardRequestHeaders, forwardResponseHead, headerNameIs, headerValue, requestHead } from './forwarding';
import { Framing, InboundRequest, InboundServer, Reply } from './http1/inbound';
import { Exchange, ResponseHandler, UpstreamClient, UpstreamError } from './http1/upstream';
import { RelayMetrics } from './relay-metrics';
import { Receipt, Spool } from './spool/spool';

const HEALTH_HEADER = 'x-health-check-id';
const OWN_EVENT = Buffer.from('{"received":"own"}');
const FOREIGN_EVENT = Buffer.from('{"received":"foreign"}');

/**
 * The data plane: HTTP/1.1 on plain sockets at both ends (llhttp parsing, no router, no
 * body parser, no streams) that relays every request to its destination over keep-alive
 * connections. Bodies are collected as the raw bytes that arrived and sent on unchanged;
 * responses stream back as they arrive.
 */
@Injectable()
export class RelayServer implements OnApplicationShutdown {
  private readonly logger = new Logger('Relay');
  private readonly config: RelayConfig;
  private readonly server: ServerConfig;
  private readonly http: InboundServer;
  private readonly upstream: UpstreamClient;
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
    this.upstream = new UpstreamClient({
      maxConnections: this.config.maxConnections,
      timeoutMs: this.config.timeoutMs,
      connectTimeoutMs: Math.min(10_000, this.config.timeoutMs),
      keepAliveMs: 4_000,
    });
    this.http = new InboundServer(
      { maxBodyBytes: this.config.maxBodyBytes, keepAliveMs: 5_000, requestTimeoutMs: Math.min(this.config.timeoutMs, 60_000) },
      { request: (req, reply) => this.handle(req, reply), tooLarge: (declared, reply) => this.tooLarge(declared, reply) },
    );
  }

  listen(): Promise<void> {
    return this.http.listen(this.server.relayPort, this.server.listenHost);
  }

  get listening(): boolean {
    return this.http.net.listening;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** The port actually bound (differs from the setting when it is 0 in tests). */
  get port(): number {
    const addr = this.http.net.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  /**
   * Stops accepting, lets requests in flight finish for up to `timeoutMs`, then closes
   * whatever is left. Idle keep-alive connections are closed at once.
   */
  async drain(timeoutMs: number): Promise<{ unfinished: number }> {
    if (!this.http.net.listening) return { unfinished: 0 };
    const closed = this.http.close();
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
    this.upstream.close();
  }

  private handle(req: InboundRequest, reply: Reply): void {
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if (headerNameIs(raw[i], HEALTH_HEADER)) return this.interceptHealthEvent(reply, raw[i + 1]);
    }
    this.inFlight++;
    reply.onDone = this.finishedOne;
    if (this.spool === null) this.forward(req, reply);
    else this.store(req, reply);
  }

  private forward(req: InboundRequest, reply: Reply): void {
    const route = this.router === null ? this.single : this.router.route(req.rawHeaders);
    const dest = route.destination;
    if (dest === null) return this.noDestination(reply);
    if (this.traceRequests) this.trace(req, route, 'relaying');
    const headers = forwardRequestHeaders(req.rawHeaders, {
      destinationHost: route.keepHost ? (headerValue(req.rawHeaders, 'host') ?? dest.host) : dest.host,
      clientAddress: clientAddress(req.remoteAddress),
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    const body = req.body;
    const head = requestHead(req.method, destinationPath(dest.url, req.url), headers, body === null ? null : body.length);
    const relayed = new Relayed(reply, this, req.method === 'HEAD', performance.now());
    const exchange = this.upstream.request(dest, head, body, req.method === 'HEAD', relayed);
    relayed.exchange = exchange;
    reply.onAbort = () => relayed.clientClosed();
  }

  private noDestination(reply: Reply): void {
    this.metrics.count('no_destination');
    reply.json(503, 'no_destination', this.router === null
      ? 'no DOWNSTREAM_SERVICE_URL is configured; this sidecar only receives health-check events'
      : 'no dispatch rule matched and no default destination is configured (dispatch default or DOWNSTREAM_SERVICE_URL)');
  }

  /** Spool mode: the route is chosen now (dispatch applies), the event goes to disk, the caller gets 202 once it is there. */
  private store(req: InboundRequest, reply: Reply): void {
    const route = this.router === null ? this.single : this.router.route(req.rawHeaders);
    if (route.destination === null) return this.noDestination(reply);
    if (this.traceRequests) this.trace(req, route, 'spooling');
    const startedAt = performance.now();
    // The caller may leave before the event is on disk; it is stored all the same.
    this.spool!.accept({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, client: clientAddress(req.remoteAddress), body: req.body, route })
      .then(
        (receipt) => this.answerReceipt(reply, receipt, startedAt),
        (e: Error) => this.answerReceipt(reply, { kind: 'unavailable', reason: e.message }, startedAt),
      );
  }

  private answerReceipt(reply: Reply, receipt: Receipt, startedAt: number): void {
    const seconds = (performance.now() - startedAt) / 1000;
    switch (receipt.kind) {
      case 'stored':
      case 'duplicate': {
        this.metrics.spoolAnswered('spooled', 202, seconds);
        if (!reply.finished) reply.send(202, 'Accepted', 'application/json', Buffer.from(`{"id":"${receipt.id}"}`));
        return;
      }
      case 'full':
        this.metrics.spoolAnswered('spool_full', 507, seconds);
        return reply.json(507, 'spool_full', `the spool holds ${receipt.bytes} bytes of its ${receipt.limit} (SPOOL_MAX_BYTES): nothing was stored; try again later`);
      case 'unavailable':
        this.metrics.spoolAnswered('spool_unavailable', 503, seconds);
        return reply.json(503, 'spool_unavailable', `nothing was stored: ${receipt.reason}`);
    }
  }

  private trace(req: InboundRequest, route: Route, msg: 'relaying' | 'spooling'): void {
    const url = req.url;
    const q = url.indexOf('?');
    const headers: Record<string, string> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers[req.rawHeaders[i].toLowerCase()] = req.rawHeaders[i + 1];
    // The query may carry a token: only the path is logged.
    this.logger.debug({
      msg,
      method: req.method,
      path: q === -1 ? url : url.slice(0, q),
      destination: route.destination!.origin,
      rule: this.router === null ? undefined : route.name,
      headers: redactHeaders(headers),
    });
  }

  /** Called when a relayed answer has been passed on whole, for metrics. */
  completed(status: number, startedAt: number): void {
    this.metrics.relayed(status, (performance.now() - startedAt) / 1000);
  }

  abandoned(): void {
    this.metrics.count('client_closed');
  }

  /** The trip to the destination failed: an error answer, or a cut connection when the answer had begun. */
  failed(reply: Reply, err: UpstreamError, startedAt: number): void {
    if (err.kind === 'caller') {
      // The destination was waiting on the caller: not the destination's failure.
      this.metrics.count('client_closed');
      this.logger.warn({ msg: 'caller stopped reading the answer: connection closed', reason: err.message });
      return reply.destroy();
    }
    const timedOut = err.kind === 'timeout';
    const outcome = timedOut ? 'timeout' : 'unreachable';
    this.metrics.failed(outcome, (performance.now() - startedAt) / 1000);
    this.logger.warn({ msg: 'relay to downstream failed', outcome, reason: err.message, code: err.code, headersSent: reply.headersSent });
    if (reply.headersSent) reply.destroy();
    else if (timedOut) reply.json(504, 'downstream_timeout', `downstream sent no response within ${this.config.timeoutMs / 1000} s`);
    else reply.json(502, 'downstream_unreachable', `downstream could not be reached: ${err.message}`);
  }

  private interceptHealthEvent(reply: Reply, id: string): void {
    const own = this.roundTrips.receive(id);
    this.metrics.count('health_event');
    reply.send(200, 'OK', 'application/json', own ? OWN_EVENT : FOREIGN_EVENT);
  }

  private tooLarge(declared: string | undefined, reply: Reply): void {
    this.metrics.count('too_large');
    this.logger.warn({ msg: 'request body over RELAY_MAX_BODY_BYTES', limit: this.config.maxBodyBytes, declared });
    reply.json(413, 'payload_too_large', `request body is over the limit of ${this.config.maxBodyBytes} bytes`);
  }

  private readonly finishedOne = () => this.finished();

  private finished(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** One relayed request's answer: the destination's response passed to the caller as it arrives. */
class Relayed implements ResponseHandler {
  exchange: Exchange | null = null;
  private status = 0;
  /** Waiting for the caller's buffer to drain: one wait, however many pieces of a read met a full buffer. */
  private waitingForDrain = false;
  private readonly resume = () => {
    this.waitingForDrain = false;
    this.exchange?.resume();
  };

  constructor(
    private readonly reply: Reply,
    private readonly relay: RelayServer,
    private readonly bodyless: boolean,
    private readonly startedAt: number,
  ) {}

  onHead(status: number, statusMessage: string, rawHeaders: string[]): void {
    this.status = status;
    const head = forwardResponseHead(rawHeaders);
    const given = head.hasLength || this.bodyless || status === 204 || status === 304;
    this.reply.head(status, statusMessage, head.lines, given ? Framing.Given : Framing.Stream);
  }

  onBody(chunk: Buffer): boolean {
    if (this.reply.write(chunk)) return true;
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      this.reply.onDrain(this.resume);
    }
    return false;
  }

  readStart(): void {
    this.reply.cork();
  }

  readEnd(): void {
    this.reply.uncork();
  }

  onEnd(): void {
    this.reply.end();
    this.relay.completed(this.status, this.startedAt);
  }

  onError(err: UpstreamError): void {
    if (this.reply.finished) return;
    this.relay.failed(this.reply, err, this.startedAt);
  }

  /** The caller went away: stop the trip to downstream too, so no socket is held for nobody. */
  clientClosed(): void {
    if (this.exchange === null || this.exchange.finished) return;
    this.relay.abandoned();
    this.exchange.abort();
  }
}

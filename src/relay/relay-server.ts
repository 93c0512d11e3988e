import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { createServer, IncomingMessage, Server, ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { InjectSettings } from '../config/settings';
import type { LogConfig, RelayConfig, ServerConfig } from '../config/sidecar-config';
import { RoundTrips } from '../health-check/round-trips';
import { redactHeaders } from '../logging/json-logger';
import { BodyBudget } from './body-budget';
import { Coordinator } from './coordination/coordinator';
import { DestinationPools, describeFailure } from './destination-pools';
import { DispatchRouter } from './dispatch/dispatch-router';
import { Route, singleRoute } from './dispatch/dispatch-table';
import { RelayCall } from './relay-call';
import { RelayMetrics } from './relay-metrics';
import { Receipt, Spool } from './spool/spool';
import { Refusal, WebhookAuth } from './webhook-auth/webhook-auth';

const OWN_EVENT = Buffer.from('{"received":"own"}');
const FOREIGN_EVENT = Buffer.from('{"received":"foreign"}');

const kLine = Symbol('relay.line');
type LineSocket = Socket & { [kLine]?: Line };

/**
 * One caller connection. Its requests are taken one at a time, in the order they came:
 * a pipelined request waits, unread, behind the answer under way (reading stops until
 * its turn), so a caller cannot make the relay hold more than one request ahead.
 */
export class Line {
  current: RelayCall | null = null;
  readonly waiting: Array<{ req: IncomingMessage; res: ServerResponse; expectsContinue: boolean }> = [];
  /** An answer of the connection's own (a parse error, an upgrade), due once the answers before it are out. */
  deferred: string | null = null;
  /** The relay paused reading it (Node may pause it too, for its own reasons: that is Node's to undo). */
  paused = false;
  closed = false;

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  constructor(readonly socket: Socket) {}
}

/**
 * The data plane: a bare node:http server (no router, no body parser) that relays each
 * request to its destination through undici's keep-alive pools. A body is collected as the
 * bytes that arrived, within the relay's memory budget, and sent on unchanged; answers
 * stream back as they arrive, at the pace the caller reads them.
 */
@Injectable()
export class RelayServer implements OnModuleInit, OnApplicationShutdown {
  readonly logger = new Logger('Relay');
  readonly pools: DestinationPools;
  readonly budget: BodyBudget;
  /** How long a body waits for room in the budget before its caller is answered 503. */
  readonly budgetWaitMs: number;
  /** Decided once: the hot path pays for a per-request line only when LOG_LEVEL=debug. */
  readonly traceRequests: boolean;
  draining = false;
  private readonly http: Server;
  private readonly requestTimeoutMs: number;
  /** Without dispatch rules every request takes this one route. */
  private readonly single: Route;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    @InjectSettings('relay') readonly config: RelayConfig,
    @InjectSettings('server') private readonly server: ServerConfig,
    @InjectSettings('log') log: LogConfig,
    private readonly roundTrips: RoundTrips,
    readonly metrics: RelayMetrics,
    /** With dispatch rules: the route is chosen by a header. */
    @Inject(DispatchRouter) private readonly router: DispatchRouter | null,
    /** In spool mode, where events go instead of downstream. */
    @Inject(Spool) private readonly spool: Spool | null,
    /** With REDIS_URL: replicas agree on who delivers each event. */
    @Inject(Coordinator) private readonly coordinator: Coordinator | null,
    /** With webhook secrets configured: every event proves its origin before it goes anywhere. */
    @Inject(WebhookAuth) private readonly auth: WebhookAuth | null,
  ) {
    this.traceRequests = log.level === 'debug';
    this.single = singleRoute(this.config.downstreamUrl);
    this.pools = new DestinationPools({ connections: this.config.maxConnections, timeoutMs: this.config.timeoutMs });
    this.budget = new BodyBudget(this.config.maxBufferedBytes);
    this.requestTimeoutMs = Math.min(this.config.timeoutMs, 60_000);
    this.budgetWaitMs = Math.min(5_000, this.requestTimeoutMs);
    this.http = createServer(
      {
        keepAliveTimeout: 5_000,
        headersTimeout: this.requestTimeoutMs,
        requestTimeout: this.requestTimeoutMs,
        // How often Node looks for requests over their time-out: often enough for short ones.
        connectionsCheckingInterval: Math.min(1_000, Math.max(100, this.requestTimeoutMs / 4)),
        // Checked by the relay, which answers in JSON like every other refusal.
        requireHostHeader: false,
      },
      (req, res) => this.onRequest(req, res, false),
    );
    this.http.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    this.http.on('connection', (socket: Socket) => {
      const line = new Line(socket);
      (socket as LineSocket)[kLine] = line;
      socket.once('close', () => {
        line.closed = true;
        line.waiting.length = 0;
      });
    });
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket));
    // Nothing is tunnelled: a protocol upgrade or a CONNECT is refused, not relayed as a plain request.
    const refuseTunnel = (_req: IncomingMessage, socket: Duplex) =>
      this.answerConnection(socket, 501, 'not_implemented', 'protocol upgrades (and CONNECT) are not relayed');
    this.http.on('upgrade', refuseTunnel);
    this.http.on('connect', refuseTunnel);
  }

  /** Binds RELAY_PORT once the modules it relies on are initialised (the spool recovered, Redis tried). */
  onModuleInit(): Promise<void> {
    return this.listen();
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
   * whatever is left. Idle keep-alive connections are closed at once; answers given while
   * draining say `Connection: close`.
   */
  async drain(timeoutMs: number): Promise<{ unfinished: number }> {
    if (!this.http.listening) return { unfinished: 0 };
    this.draining = true;
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
    await this.coordinator?.close();
    await this.pools.destroy();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    const line = (req.socket as LineSocket)[kLine]!;
    if (line.current !== null) {
      // Pipelined: read nothing more of this connection until the answer under way is out.
      line.waiting.push({ req, res, expectsContinue });
      line.pause();
      return;
    }
    this.begin(line, req, res, expectsContinue);
  }

  private begin(line: Line, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    this.inFlight++;
    const call = new RelayCall(this, line, req, res);
    line.current = call;
    call.start(expectsContinue);
  }

  /** Called once per request when its answer is over, however it ended. */
  over(line: Line): void {
    line.current = null;
    this.inFlight--;
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    if (line.closed) return;
    const next = line.waiting.shift();
    if (next !== undefined) return this.begin(line, next.req, next.res, next.expectsContinue);
    if (line.deferred !== null) return void line.socket.end(line.deferred, 'latin1');
    if (line.paused) {
      line.paused = false;
      line.socket.resume();
    }
  }

  route(rawHeaders: readonly string[]): Route {
    return this.router === null ? this.single : this.router.route(rawHeaders);
  }

  noDestination(call: RelayCall): void {
    this.metrics.count('no_destination');
    call.answer(
      503,
      'no_destination',
      this.router === null
        ? 'no DOWNSTREAM_SERVICE_URL is configured; this sidecar only receives health-check events'
        : 'no dispatch rule matched and no default destination is configured (dispatch default or DOWNSTREAM_SERVICE_URL)',
    );
  }

  /** A whole request has arrived: a health-check event is answered here, others are relayed or spooled. */
  arrived(call: RelayCall, body: Buffer | null, healthId: string | undefined): void {
    const auth = this.auth;
    if (healthId !== undefined) {
      // Answered here and never relayed; with global secrets it must be signed all the same.
      const refused = auth === null ? null : auth.checkHealthEvent(call.req.rawHeaders, body);
      return refused === null ? this.healthEvent(call, healthId) : this.unauthorized(call, refused);
    }
    const route = this.route(call.req.rawHeaders);
    if (auth !== null) {
      const refused = auth.check(route, call.req.rawHeaders, body);
      if (refused !== null) return this.unauthorized(call, refused);
    }
    if (route.destination === null) return this.noDestination(call);
    if (this.spool === null) {
      if (this.traceRequests) this.trace(call.req, route, 'relaying');
      // With REDIS_URL, replicas that received the same event agree on which one delivers it.
      if (this.coordinator !== null) return this.coordinator.relay(call, route, body);
      return call.forward(route, body);
    }
    if (this.traceRequests) this.trace(call.req, route, 'spooling');
    const startedAt = performance.now();
    const req = call.req;
    // The caller may leave before the event is on disk; it is stored all the same.
    this.spool.accept({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, client: call.clientAddress, body, route }).then(
      (receipt) => this.answerReceipt(call, receipt, startedAt),
      (e: Error) => this.answerReceipt(call, { kind: 'unavailable', reason: e.message }, startedAt),
    );
  }

  private answerReceipt(call: RelayCall, receipt: Receipt, startedAt: number): void {
    const seconds = (performance.now() - startedAt) / 1000;
    switch (receipt.kind) {
      case 'stored':
      case 'duplicate':
        this.metrics.spoolAnswered('spooled', 202, seconds);
        return call.send(202, Buffer.from(`{"id":"${receipt.id}"}`));
      case 'full':
        this.metrics.spoolAnswered('spool_full', 507, seconds);
        return call.answer(
          507,
          'spool_full',
          `the spool holds ${receipt.bytes} bytes of its ${receipt.limit} (SPOOL_MAX_BYTES): nothing was stored; try again later`,
        );
      case 'unavailable':
        this.metrics.spoolAnswered('spool_unavailable', 503, seconds);
        return call.answer(503, 'spool_unavailable', `nothing was stored: ${receipt.reason}`);
    }
  }

  /** No valid proof of origin: 401, nothing relayed or stored; one log line without the proof or the secret. */
  private unauthorized(call: RelayCall, r: Refusal): void {
    this.metrics.count('unauthorized');
    const url = call.req.url!;
    const q = url.indexOf('?');
    this.logger.warn({
      msg: 'webhook refused: no valid proof of origin',
      reason: r.reason,
      sender: r.sender,
      rule: r.rule,
      path: q === -1 ? url : url.slice(0, q),
      client: call.clientAddress,
      detail: r.message,
      maybeReserialised: r.maybeReserialised,
    });
    const body: Record<string, unknown> = { error: r.reason, message: r.message, sender: r.sender };
    if (r.maybeReserialised) body.maybeReserialised = true;
    call.send(401, Buffer.from(JSON.stringify(body)));
  }

  private healthEvent(call: RelayCall, id: string): void {
    const own = this.roundTrips.receive(id);
    this.metrics.count('health_event');
    call.send(200, own ? OWN_EVENT : FOREIGN_EVENT);
  }

  private trace(req: IncomingMessage, route: Route, msg: 'relaying' | 'spooling'): void {
    const url = req.url!;
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

  tooLarge(message: string, declared: string | undefined): void {
    this.metrics.count('too_large');
    this.logger.warn({ msg: 'request body over RELAY_MAX_BODY_BYTES', limit: this.config.maxBodyBytes, declared, reason: message });
  }

  /** The trip to the destination failed: an error answer, or a cut connection when the answer had begun. */
  failed(call: RelayCall, err: Error, startedAt: number): void {
    const f = describeFailure(err);
    const outcome = f.timedOut ? 'timeout' : 'unreachable';
    this.metrics.failed(outcome, (performance.now() - startedAt) / 1000);
    this.logger.warn({ msg: 'relay to downstream failed', outcome, reason: f.reason, code: f.code, headersSent: call.res.headersSent });
    if (call.res.headersSent) call.res.destroy();
    else if (f.timedOut) call.answer(504, 'downstream_timeout', `downstream sent no response within ${this.config.timeoutMs / 1000} s`);
    else call.answer(502, 'downstream_unreachable', `downstream could not be reached: ${f.reason}`);
  }

  /** Malformed input or a request that never completed: answered in its turn, then the connection closes. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const current = (socket as LineSocket)[kLine]?.current ?? null;
      const message = `the request did not arrive within ${this.requestTimeoutMs / 1000} s`;
      // The request whose body stalled is the one being read; one waiting behind an answer gets its turn.
      if (current === null) return this.answerConnection(socket, 408, 'request_timeout', message);
      if (current.receiving) current.answer(408, 'request_timeout', message, true);
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    this.answerConnection(socket, status, 'bad_request', `malformed HTTP request (${err.code ?? 'parse error'})`);
  }

  /** An answer of the connection's own, not to a request it could read; the connection closes after it. */
  private answerConnection(socket: Duplex, status: number, error: string, message: string): void {
    const body = JSON.stringify({ error, message });
    const raw = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
    const line = (socket as LineSocket)[kLine];
    if (line === undefined || line.current === null) return void socket.end(raw, 'latin1');
    // Answers are still due ahead of it: nothing more is read, and it goes out after them.
    line.deferred ??= raw;
    line.pause();
  }
}

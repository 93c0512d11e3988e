import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { BudgetWaiter } from './body-budget';
import type { Route } from './dispatch/dispatch-table';
import { applyHeaderPatches } from './dispatch/header-patches';
import {
  clientAddress,
  destinationPath,
  forwardRequestHeaders,
  forwardResponseHeaders,
  headerValue,
  otherCoding,
  ResponseHeaders,
} from './forwarding';
import type { Line, RelayServer } from './relay-server';
import { checkRequestHead, isRefusal } from './request-checks';

/**
 * One request on the relay port, from its head to the end of its answer: the body read
 * within the relay's memory budget, the trip to the destination (as undici's dispatch
 * handler), the answer streamed back at the pace the caller reads it.
 */
export class RelayCall implements Dispatcher.DispatchHandler {
  /** The body is still arriving (a request time-out now is this request's). */
  receiving = false;
  private declared = -1;
  /** A declared body: one buffer of its length, filled as it arrives (or the single piece it came in). */
  private body: Buffer | null = null;
  /** A chunked body: its pieces. */
  private chunks: Buffer[] | null = null;
  private received = 0;
  /** Bytes of the relay's budget this request holds. */
  private reserved = 0;
  private waiter: BudgetWaiter | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** A piece of a chunked body that waits for room in the budget. */
  private held: Buffer | null = null;
  private healthId: string | undefined;

  private controller: Dispatcher.DispatchController | null = null;
  private dispatched = false;
  /** The destination's part is over: its answer passed on whole, or failed. */
  private exchangeOver = false;
  /** The caller's answer is over (res closed), however it ended. */
  private over = false;
  private status = 0;
  private startedAt = 0;
  private waitingForDrain = false;
  /** Told once whether the destination answered (coordination between replicas marks the event done or releases it). */
  onSettled: ((delivered: boolean) => void) | null = null;

  constructor(
    private readonly relay: RelayServer,
    private readonly line: Line,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {}

  get clientAddress(): string | undefined {
    return clientAddress(this.req.socket.remoteAddress);
  }

  start(expectsContinue: boolean): void {
    this.res.on('close', () => this.closed());
    const req = this.req;
    const relay = this.relay;
    const head = checkRequestHead(
      req.url!,
      req.rawHeaders,
      req.httpVersionMajor === 1 && req.httpVersionMinor === 1,
      relay.config.maxBodyBytes,
    );
    if (isRefusal(head)) {
      if (head.status === 413) relay.tooLarge(head.message, headerValue(req.rawHeaders, 'content-length'));
      return this.answer(head.status, head.error, head.message, true);
    }
    this.healthId = head.healthId;
    this.declared = head.declared;
    if (head.declared <= 0 && !head.chunked) return relay.arrived(this, null, this.healthId);
    this.receiving = true;
    if (head.declared > 0 && !relay.budget.tryTake(head.declared)) {
      return this.waitForRoom(head.declared, () => this.read(expectsContinue));
    }
    this.reserved = Math.max(0, head.declared);
    this.read(expectsContinue);
  }

  private read(expectsContinue: boolean): void {
    // The caller waits for this before it sends its body; it is sent once there is room for it.
    if (expectsContinue) this.res.writeContinue();
    this.req.on('data', (chunk: Buffer) => this.onBodyPiece(chunk));
    this.req.on('end', () => this.onBodyEnd());
  }

  private onBodyPiece(chunk: Buffer): void {
    if (this.over || !this.receiving) return;
    if (this.declared > 0) return this.keep(chunk);
    // Chunked: room is taken piece by piece, and the body is bounded as it grows.
    if (this.received + chunk.length > this.relay.config.maxBodyBytes) return this.refuseTooLarge();
    if (this.relay.budget.tryTake(chunk.length)) {
      this.reserved += chunk.length;
      return this.keep(chunk);
    }
    this.req.pause();
    this.held = chunk;
    this.waitForRoom(chunk.length, () => {
      const piece = this.held!;
      this.held = null;
      this.keep(piece);
      this.req.resume();
    });
  }

  private keep(chunk: Buffer): void {
    if (this.declared > 0) {
      if (this.body === null) {
        if (chunk.length === this.declared) this.body = chunk;
        else chunk.copy((this.body = Buffer.allocUnsafe(this.declared)), 0);
      } else chunk.copy(this.body, this.received);
    } else (this.chunks ??= []).push(chunk);
    this.received += chunk.length;
  }

  private onBodyEnd(): void {
    if (this.over || !this.receiving) return;
    this.receiving = false;
    const chunks = this.chunks;
    this.chunks = null;
    const body =
      this.declared > 0 ? this.body : chunks === null ? null : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.received);
    this.relay.arrived(this, body, this.healthId);
  }

  /** Queues for room in the budget; a body that waits longer than the relay allows is answered 503. */
  private waitForRoom(bytes: number, then: () => void): void {
    const relay = this.relay;
    this.waiter = relay.budget.wait(bytes, () => {
      this.waiter = null;
      this.clearTimer();
      this.reserved += bytes;
      then();
    });
    this.timer = setTimeout(() => {
      this.timer = null;
      relay.budget.cancel(this.waiter!);
      this.waiter = null;
      this.receiving = false;
      relay.metrics.count('busy');
      const message = `request bodies in memory are at RELAY_MAX_BUFFERED_BYTES (${relay.budget.limit} bytes) and this one found no room within ${relay.budgetWaitMs / 1000} s; try again`;
      this.answer(503, 'busy', message, true, ['retry-after', '1']);
    }, relay.budgetWaitMs);
  }

  private refuseTooLarge(): void {
    this.receiving = false;
    const message = `request body is over the limit of ${this.relay.config.maxBodyBytes} bytes`;
    this.relay.tooLarge(message, undefined);
    this.answer(413, 'payload_too_large', message, true);
  }

  /** Sends the request on: undici calls back the methods below. */
  forward(route: Route, body: Buffer | null): void {
    const dest = route.destination!;
    const req = this.req;
    const headers = forwardRequestHeaders(req.rawHeaders, {
      destinationHost: route.keepHost ? (headerValue(req.rawHeaders, 'host') ?? null) : null,
      clientAddress: this.clientAddress,
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    this.startedAt = performance.now();
    this.dispatched = true;
    try {
      this.relay.pools.for(dest).dispatch({ path: destinationPath(dest, req.url!), method: req.method!, headers, body }, this);
    } catch (e) {
      this.onResponseError(null, e as Error);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The caller left while the request waited for a connection.
    if (this.over) controller.abort(new Error('the caller closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: ResponseHeaders, statusMessage?: string): void {
    if (status >= 200) this.settle(true);
    if (status < 200 || this.over) return;
    const te = headers['transfer-encoding'];
    const coding = te === undefined ? null : otherCoding(typeof te === 'string' ? te : te.join(','));
    // Its chunks would be taken off and the coded bytes passed on as if they were the body.
    if (coding !== null)
      return controller.abort(new Error(`the destination answered with the transfer coding ${coding}, which is not relayed`));
    const out = forwardResponseHeaders(headers);
    if (this.relay.draining) out.push('connection', 'close');
    this.status = status;
    try {
      this.res.writeHead(status, statusMessage || undefined, out);
    } catch (e) {
      controller.abort(new Error(`the destination's answer cannot be passed on: ${(e as Error).message}`));
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // Nothing more once the caller is gone or was cut (a read already under way may still deliver).
    if (this.over || this.exchangeOver || this.res.write(chunk)) return;
    controller.pause();
    if (this.waitingForDrain) return;
    // One wait per pause; the caller that reads nothing for the relay's time-out is cut as its own doing.
    this.waitingForDrain = true;
    this.res.once('drain', () => {
      this.waitingForDrain = false;
      this.clearTimer();
      this.controller?.resume();
    });
    this.timer = setTimeout(() => this.callerStalled(), this.relay.config.timeoutMs);
  }

  onResponseEnd(): void {
    if (this.exchangeOver) return;
    this.exchangeOver = true;
    this.releaseBody();
    this.res.end();
    this.relay.metrics.relayed(this.status, (performance.now() - this.startedAt) / 1000);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    this.settle(false);
    if (this.exchangeOver) return;
    this.exchangeOver = true;
    this.releaseBody();
    if (this.over) return; // aborted because the caller left: counted there
    this.relay.failed(this, err, this.startedAt);
  }

  private callerStalled(): void {
    this.timer = null;
    if (this.exchangeOver) return;
    this.exchangeOver = true;
    this.relay.metrics.count('client_closed');
    this.relay.logger.warn({
      msg: 'caller stopped reading the answer: connection closed',
      reason: `the caller read nothing of the answer for ${this.relay.config.timeoutMs / 1000} s`,
    });
    this.controller?.abort(new Error('the caller stopped reading'));
    this.res.destroy();
  }

  /**
   * A JSON error answer, `{"error": code, "message": text}`. `close`: the connection closes
   * after it (the request's body was not read, or the connection cannot be trusted).
   * After a head went out, the connection is cut instead.
   */
  answer(status: number, error: string, message: string, close = false, extra: readonly string[] = []): void {
    if (this.res.headersSent) return void this.res.destroy();
    this.send(status, Buffer.from(JSON.stringify({ error, message })), close, extra);
  }

  /** A whole JSON answer of the relay's own. */
  send(status: number, body: Buffer, close = false, extra: readonly string[] = []): void {
    if (this.over) return;
    if (this.res.headersSent) return void this.res.destroy();
    const headers = ['content-type', 'application/json', 'content-length', String(body.length), ...extra];
    if (close || this.relay.draining) headers.push('connection', 'close');
    this.res.writeHead(status, headers);
    this.res.end(body);
  }

  /** The answer is over (whole, cut, or the caller went away): everything this request held goes back. */
  private closed(): void {
    this.over = true;
    this.receiving = false;
    this.clearTimer();
    if (this.waiter !== null) this.relay.budget.cancel(this.waiter);
    this.waiter = null;
    this.held = null;
    if (this.dispatched && !this.exchangeOver) {
      // The caller went away: stop the trip to the destination too, so no socket is held for nobody.
      this.exchangeOver = true;
      this.relay.metrics.count('client_closed');
      this.controller?.abort(new Error('the caller closed the connection'));
      this.settle(false);
    }
    this.releaseBody();
    this.relay.over(this.line);
  }

  private settle(delivered: boolean): void {
    const f = this.onSettled;
    if (f === null) return;
    this.onSettled = null;
    f(delivered);
  }

  private releaseBody(): void {
    this.body = null;
    this.chunks = null;
    const n = this.reserved;
    this.reserved = 0;
    this.relay.budget.release(n);
  }

  private clearTimer(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

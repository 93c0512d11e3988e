import type { Dispatcher } from 'undici';
import type { Route } from '../dispatch/dispatch-table';
import { applyHeaderPatches } from '../dispatch/header-patches';
import { DestinationPools, describeFailure } from '../destination-pools';
import { destinationPath, forwardRequestHeaders, headerValue, ResponseHeaders } from '../forwarding';
import type { EventMeta } from './spool-record';

/** How one attempt went: the destination's status (and Retry-After), or why there was none. */
export type AttemptResult =
  | { answered: true; status: number; retryAfter: string | undefined }
  | { answered: false; error: string; timedOut: boolean; aborted: boolean };

/** Most a destination's answer body is read before the connection is dropped: only its status counts. */
const ANSWER_BODY_LIMIT = 64 * 1024;

/**
 * Sends spooled events to their destination as the proxy would have sent them then:
 * same path joining, end-to-end headers, Host and X-Forwarded-*, the route's header
 * patches, the body byte for byte. Over undici pools of its own, closed on shutdown.
 */
export class DeliveryClient {
  private readonly pools: DestinationPools;

  constructor(timeoutMs: number, connectionsPerOrigin: number) {
    this.pools = new DestinationPools({ connections: connectionsPerOrigin, timeoutMs });
  }

  /** One attempt; settles once the destination's status is known (its body is read and dropped after). */
  send(route: Route, meta: EventMeta, body: Buffer, signal: AbortSignal): Promise<AttemptResult> {
    const dest = route.destination;
    if (dest === null)
      return Promise.resolve({
        answered: false,
        error: `no destination is configured for rule ${route.name}`,
        timedOut: false,
        aborted: false,
      });
    if (signal.aborted) return Promise.resolve({ answered: false, error: 'aborted', timedOut: false, aborted: true });
    const headers = forwardRequestHeaders(meta.headers, {
      destinationHost: route.keepHost ? (headerValue(meta.headers, 'host') ?? null) : null,
      clientAddress: meta.client ?? undefined,
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    return new Promise((resolve) => {
      const attempt = new Attempt(signal, resolve);
      this.pools
        .for(dest)
        .dispatch({ path: destinationPath(dest, meta.url), method: meta.method, headers, body: body.length === 0 ? null : body }, attempt);
    });
  }

  close(): Promise<void> {
    return this.pools.destroy();
  }
}

/** One delivery attempt as undici's dispatch handler: settles on the response's status. */
class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private bodyBytes = 0;
  /** Shutdown: the attempt ends now, whether or not it had a connection yet. */
  private readonly onAbort = () => {
    this.controller?.abort(new Error('aborted'));
    this.settle({ answered: false, error: 'aborted', timedOut: false, aborted: true });
  };

  constructor(
    private readonly signal: AbortSignal,
    private readonly resolve: (r: AttemptResult) => void,
  ) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.signal.aborted) controller.abort(new Error('aborted'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void {
    if (status < 200) return;
    const retryAfter = headers['retry-after'];
    this.settle({ answered: true, status, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > ANSWER_BODY_LIMIT) controller.abort(new Error('answer body over 64 KiB: dropped'));
  }

  onResponseEnd(): void {
    this.done();
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    this.done();
    if (this.settled) return;
    const f = describeFailure(err);
    const timedOut = f.timedOut || f.code === 'UND_ERR_CONNECT_TIMEOUT';
    const error = f.code && !f.reason.includes(f.code) ? `${f.code}: ${f.reason}` : f.reason;
    this.settle({ answered: false, error, timedOut, aborted: this.signal.aborted });
  }

  private settle(r: AttemptResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(r);
  }

  private done(): void {
    this.signal.removeEventListener('abort', this.onAbort);
  }
}

import type { Route } from '../dispatch/dispatch-table';
import { applyHeaderPatches } from '../dispatch/header-patches';
import { destinationPath, forwardRequestHeaders, headerValue, requestHead } from '../forwarding';
import { UpstreamClient, UpstreamError } from '../http1/upstream';
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
 * patches, the body byte for byte. Over the relay's own HTTP/1.1 client (its own pool of
 * keep-alive connections), closed on shutdown.
 */
export class DeliveryClient {
  private readonly client: UpstreamClient;

  constructor(timeoutMs: number, connectionsPerOrigin: number) {
    this.client = new UpstreamClient({
      maxConnections: connectionsPerOrigin,
      timeoutMs,
      connectTimeoutMs: Math.min(10_000, timeoutMs),
      keepAliveMs: 4_000,
    });
  }

  /** One attempt; settles once the destination's status is known (its body is read and dropped after). */
  send(route: Route, meta: EventMeta, body: Buffer, signal: AbortSignal): Promise<AttemptResult> {
    const dest = route.destination;
    if (dest === null) return Promise.resolve({ answered: false, error: `no destination is configured for rule ${route.name}`, timedOut: false, aborted: false });
    if (signal.aborted) return Promise.resolve({ answered: false, error: 'aborted', timedOut: false, aborted: true });
    const headers = forwardRequestHeaders(meta.headers, {
      destinationHost: route.keepHost ? (headerValue(meta.headers, 'host') ?? dest.host) : dest.host,
      clientAddress: meta.client ?? undefined,
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    const sent = body.length === 0 ? null : body;
    const head = requestHead(meta.method, destinationPath(dest.url, meta.url), headers, sent === null ? null : sent.length);
    return new Promise((resolve) => {
      let answered = false;
      let bodyBytes = 0;
      const onAbort = () => {
        exchange.abort();
        if (!answered) resolve({ answered: false, error: 'aborted', timedOut: false, aborted: true });
      };
      const exchange = this.client.request(dest, head, sent, meta.method === 'HEAD', {
        onHead: (status, _message, raw) => {
          answered = true;
          signal.removeEventListener('abort', onAbort);
          resolve({ answered: true, status, retryAfter: headerValue(raw, 'retry-after') });
        },
        onBody: (chunk) => {
          bodyBytes += chunk.length;
          if (bodyBytes > ANSWER_BODY_LIMIT) exchange.abort();
          return true;
        },
        onEnd: () => undefined,
        onError: (err: UpstreamError) => {
          signal.removeEventListener('abort', onAbort);
          if (answered) return;
          const timedOut = err.kind === 'timeout' || (err.kind === 'connect' && err.code === 'ETIMEDOUT');
          const error = err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
          resolve({ answered: false, error, timedOut, aborted: signal.aborted });
        },
        readStart: () => undefined,
        readEnd: () => undefined,
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}

import type { Agent, Dispatcher } from 'undici';
import type { Route } from '../dispatch/dispatch-table';
import { applyHeaderPatches } from '../dispatch/header-patches';
import { destinationPath, forwardRequestHeaders, headerNameIs } from '../forwarding';
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
 * patches, the body byte for byte. Its own keep-alive pool, closed on shutdown.
 */
export class DeliveryClient {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs: number, connectionsPerOrigin: number) {
    // Loaded here, in spool mode only: the proxy's own client is http1/upstream, and undici costs start-up time and memory.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Agent } = require('undici') as typeof import('undici');
    this.agent = new Agent({
      connections: connectionsPerOrigin,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: Math.min(10_000, timeoutMs) },
    });
  }

  async send(route: Route, meta: EventMeta, body: Buffer, signal: AbortSignal): Promise<AttemptResult> {
    const dest = route.destination;
    if (dest === null) return { answered: false, error: `no destination is configured for rule ${route.name}`, timedOut: false, aborted: false };
    const headers = forwardRequestHeaders(meta.headers, {
      destinationHost: route.keepHost ? (originalHost(meta.headers) ?? dest.host) : dest.host,
      clientAddress: meta.client ?? undefined,
    });
    if (route.patches !== null) applyHeaderPatches(headers, route.patches);
    try {
      const res = await this.agent.request({
        origin: dest.origin,
        path: destinationPath(dest.url, meta.url),
        method: meta.method as Dispatcher.HttpMethod,
        headers,
        body: body.length === 0 ? null : body,
        signal,
      });
      const retryAfter = res.headers['retry-after'];
      await res.body.dump({ limit: ANSWER_BODY_LIMIT }).catch(() => undefined);
      return { answered: true, status: res.statusCode, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter };
    } catch (e) {
      const err = e as Error & { code?: string };
      const timedOut = err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_CONNECT_TIMEOUT';
      const reason = err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
      return { answered: false, error: err.code && !reason.includes(err.code) ? `${err.code}: ${reason}` : reason, timedOut, aborted: signal.aborted };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

function originalHost(headers: readonly string[]): string | null {
  for (let i = 0; i < headers.length; i += 2) if (headerNameIs(headers[i], 'host')) return headers[i + 1];
  return null;
}

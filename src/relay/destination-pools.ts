import type { Pool } from 'undici';
import type { Destination } from './forwarding';

export interface PoolSettings {
  /** Connections per destination (RELAY_MAX_CONNECTIONS); requests beyond wait in order for one to free. */
  connections: number;
  /** No response head, or no body byte, for this long: the request fails as a timeout (RELAY_TIMEOUT_SECONDS). */
  timeoutMs: number;
}

/**
 * One undici Pool per destination origin, made on first use: keep-alive HTTP/1.1
 * connections, one request at a time on each. undici parses responses strictly and
 * discards a connection on which a byte arrives that answers nothing (after a HEAD, a
 * 204 or 304, a complete body, or on an idle connection), so a destination's stray bytes
 * never become another caller's response. Idle connections close after 4 s, or a second
 * before the destination's own Keep-Alive timeout when that is shorter.
 */
export class DestinationPools {
  private readonly pools = new Map<string, Pool>();
  private readonly options: Pool.Options;

  constructor({ connections, timeoutMs }: PoolSettings) {
    this.options = {
      connections,
      pipelining: 1,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      keepAliveTimeoutThreshold: 1_000,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: Math.min(10_000, timeoutMs) },
    };
  }

  for(dest: Destination): Pool {
    let pool = this.pools.get(dest.origin);
    if (pool === undefined) this.pools.set(dest.origin, (pool = new (poolClass())(dest.origin, this.options)));
    return pool;
  }

  /** Ends every connection now; requests still under way fail. */
  async destroy(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }
}

let PoolClass: typeof Pool | null = null;

/**
 * undici, loaded when the first request goes to a destination: a sidecar whose relay port
 * only takes health-check events never loads it (~3 MiB of RSS, ~100 ms of start-up).
 */
function poolClass(): typeof Pool {
  return (PoolClass ??= (require('undici') as typeof import('undici')).Pool);
}

/** How a trip to a destination failed, from undici's error. */
export interface DestinationFailure {
  /** The destination took too long (no head, or a gap in the body, over the timeout). */
  timedOut: boolean;
  code: string | undefined;
  /** The error's message with its cause's, for a log line or an answer. */
  reason: string;
}

export function describeFailure(err: Error): DestinationFailure {
  const code = (err as { code?: string }).code;
  const cause = err.cause instanceof Error ? err.cause.message : '';
  const reason = cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
  return {
    timedOut: code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT',
    code,
    reason,
  };
}

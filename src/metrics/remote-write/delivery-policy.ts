/** What became of one push request; the `result` label of sidecar_remote_write_pushes_total. */
export const PUSH_RESULTS = ['success', 'rejected', 'throttled', 'server_error', 'network_error'] as const;
export type PushResult = (typeof PUSH_RESULTS)[number];

/**
 * The remote-write 1.0 rules for an answer: 2xx delivered; 5xx and 429 retried (the
 * receiver may take the same data later); any other status refused for good, so
 * retrying would only block the queue.
 */
export function resultOfStatus(status: number): PushResult {
  if (status >= 200 && status < 300) return 'success';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server_error';
  return 'rejected';
}

export const isRetried = (r: PushResult) => r === 'throttled' || r === 'server_error' || r === 'network_error';

/**
 * Exponential backoff with jitter: after the n-th consecutive failure (n from 1) wait
 * between half and all of min·2^(n-1), capped at max; the jitter keeps a fleet of
 * sidecars that lost the same backend from coming back in step.
 */
export function backoffMs(failures: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.max(0, Math.min(failures - 1, 40)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A Retry-After header (delay seconds or an HTTP-date) as milliseconds from `nowMs`; null when absent or unreadable. */
export function retryAfterMs(header: string | undefined, nowMs: number = Date.now()): number | null {
  if (header === undefined) return null;
  const v = header.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date (IMF-fixdate or RFC 850) starts with its weekday and ends in GMT;
  // Date.parse alone would take far looser text.
  if (!/^[A-Za-z]{3,9}, .* GMT$/.test(v)) return null;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

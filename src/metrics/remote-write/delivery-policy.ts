// The backoff and Retry-After reading are shared with the spool: ../../common/retry-policy.

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

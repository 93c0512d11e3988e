/**
 * What the delivery worker does after an attempt: pure rules, so that each is tested on
 * its own. Times are milliseconds. The backoff and Retry-After reading are shared with
 * remote write (../../common/retry-policy); the status rules and the deadline are the spool's.
 */
import { Backoff, backoffMs } from '../../common/retry-policy';

export type Verdict = 'delivered' | 'retry' | 'dead';

/**
 * 2xx is delivered. 408, 429 and 5xx are the destination's trouble and are retried.
 * Any other answer, redirects included (they are not followed), says this request will
 * never be taken as it is: retrying it would only hold up the events behind it.
 */
export function verdictFor(status: number): Verdict {
  if (status >= 200 && status < 300) return 'delivered';
  if (status >= 500 || status === 408 || status === 429) return 'retry';
  return 'dead';
}

export interface RetrySettings extends Backoff {
  maxAgeMs: number;
}

/**
 * When to try again after a failed attempt, or null when the event has had its time
 * (SPOOL_MAX_AGE from when it was queued) and goes to the dead letters. A Retry-After
 * is honoured as it is, without jitter; the last retry happens at the deadline itself.
 */
export function nextAttemptAt(
  event: { queuedAt: number; attempts: number },
  retryAfter: number | null,
  now: number,
  s: RetrySettings,
  random: () => number = Math.random,
): number | null {
  const deadline = event.queuedAt + s.maxAgeMs;
  if (now >= deadline) return null;
  const delay = retryAfter ?? backoffMs(event.attempts, s, random);
  return Math.min(now + delay, deadline);
}

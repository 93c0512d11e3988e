/**
 * What the delivery worker does after an attempt: pure rules, so that each is tested on
 * its own. Times are milliseconds.
 */

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

/**
 * A Retry-After value as a delay from `now`: delay-seconds or an HTTP-date (RFC 9110
 * 10.2.3). A date in the past is no delay; anything else that is not one of the two
 * forms is ignored (null), and the backoff applies.
 */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | null {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = httpDate(v);
  if (at === null) return null;
  return Math.max(0, at - now);
}

const IMF_FIXDATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/** The three HTTP-date forms (RFC 9110 5.6.7) as ms since the epoch; Date.parse alone would also take "3" or "2030". */
export function httpDate(v: string): number | null {
  let at = NaN;
  if (IMF_FIXDATE.test(v) || RFC850_DATE.test(v)) at = Date.parse(v);
  else if (ASCTIME_DATE.test(v)) at = Date.parse(`${v} GMT`); // asctime carries no zone; HTTP means GMT
  return Number.isNaN(at) ? null : at;
}

export interface RetrySettings {
  initialMs: number;
  maxMs: number;
  maxAgeMs: number;
}

/**
 * Exponential backoff with full jitter: a delay drawn evenly from [0, min(max, initial·2^(n-1)))
 * after the n-th failed attempt, so that many senders spread out instead of retrying in step.
 */
export function backoffMs(attempts: number, s: Pick<RetrySettings, 'initialMs' | 'maxMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(s.maxMs, s.initialMs * 2 ** Math.min(attempts - 1, 52));
  return Math.floor(random() * ceiling);
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

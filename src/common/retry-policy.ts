// Used by: metrics/remote-write (pushes) and relay/spool (event delivery). Each keeps its own status rules.

/** The two ends of an exponential backoff, in milliseconds. */
export interface Backoff {
  /** The ceiling after the first failure; it doubles with each further one. */
  initialMs: number;
  /** The ceiling's cap. */
  maxMs: number;
}

/**
 * Exponential backoff with equal jitter: after the n-th consecutive failure (n from 1) a
 * delay drawn evenly between half and all of min(max, initial·2^(n-1)).
 *
 * Why equal jitter and not full jitter ([0, ceiling)): both callers retry in order against
 * one receiver that has just failed — remote write its oldest push, one at a time; the
 * spool the oldest event of a destination (SPOOL_CONCURRENCY of them, 1 by default) — and
 * nothing is gained by coming back early: during an outage an early retry is one more
 * request to a receiver that is still down. Full jitter may draw ~0 and retry at once, and
 * the wait after the n-th failure then need not grow with n; equal jitter never waits less
 * than half the ceiling. The jittered half still keeps a fleet of sidecars that lost the
 * same receiver from coming back in step.
 */
export function backoffMs(failures: number, b: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 52)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * A Retry-After value as a delay from `now`: delay-seconds or an HTTP-date (RFC 9110
 * 10.2.3). A date in the past is no delay; anything else that is not one of the two forms
 * is ignored (null), and the caller's backoff applies. Of a repeated header the first counts.
 */
export function retryAfterMs(value: string | string[] | undefined, now: number = Date.now()): number | null {
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

import { headerNameIs, otherCoding } from './forwarding';

/**
 * What the relay refuses of a caller's request head before any byte goes anywhere, and
 * what it needs to know of it: pure, so that each rule is unit-tested on its own.
 */

export interface Refusal {
  status: 400 | 413 | 501;
  error: 'bad_request' | 'payload_too_large' | 'not_implemented';
  message: string;
}

export interface RequestHead {
  /** Content-Length as declared, or -1 without one. */
  declared: number;
  /** The body comes chunked (its length is known only at its end). */
  chunked: boolean;
  /** X-Health-Check-Id: a health-check event, answered by the relay itself. */
  healthId: string | undefined;
}

const ORIGIN_FORM = 'the request target must be a path (origin-form); absolute URLs and * are not relayed';

/**
 * Checks a request's target and headers (`rawHeaders` as Node gives them: [name, value, ...]).
 * `http11`: the request is HTTP/1.1 (which must name its Host); `maxBodyBytes`: a declared
 * length over it is refused at once.
 */
export function checkRequestHead(url: string, rawHeaders: readonly string[], http11: boolean, maxBodyBytes: number): Refusal | RequestHead {
  // Only origin-form: an absolute URL would name a Host of the caller's choosing.
  if (url.charCodeAt(0) !== 47 /* / */) return { status: 400, error: 'bad_request', message: ORIGIN_FORM };
  if (hasDotSegment(url)) {
    return {
      status: 400,
      error: 'bad_request',
      message: 'the request path has a dot-segment (. or .., in any spelling); it is not relayed',
    };
  }
  let hosts = 0;
  let declared = -1;
  let chunked = false;
  let healthId: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    switch (name.length) {
      case 4:
        if (headerNameIs(name, 'host')) hosts++;
        break;
      case 14:
        if (headerNameIs(name, 'content-length')) declared = Number(rawHeaders[i + 1]);
        break;
      case 17:
        if (headerNameIs(name, 'transfer-encoding')) {
          const coding = otherCoding(rawHeaders[i + 1]);
          if (coding !== null) {
            return {
              status: 501,
              error: 'not_implemented',
              message: `the transfer coding ${coding} is not relayed (only chunked; use Content-Encoding)`,
            };
          }
          chunked = true;
        } else if (headerNameIs(name, 'x-health-check-id')) healthId = rawHeaders[i + 1];
        break;
    }
  }
  if (hosts > 1) return { status: 400, error: 'bad_request', message: 'the request has more than one Host header' };
  if (hosts === 0 && http11) return { status: 400, error: 'bad_request', message: 'an HTTP/1.1 request must have a Host header' };
  if (declared > maxBodyBytes) {
    return { status: 413, error: 'payload_too_large', message: `request body is over the limit of ${maxBodyBytes} bytes` };
  }
  return { declared, chunked, healthId };
}

export function isRefusal(r: Refusal | RequestHead): r is Refusal {
  return 'status' in r;
}

/**
 * Whether the path of a request target (the query is not looked at) has a `.` or `..`
 * segment in any spelling a server might decode: `%2e` for a dot; `/`, `\`, `%2f` or
 * `%5c` between segments; and a segment that ends at `;` (a path parameter, which some
 * servers strip before they resolve dots). Such a path could climb out of the
 * destination's path prefix, so it is refused rather than guessed at.
 */
export function hasDotSegment(url: string): boolean {
  const end = pathEnd(url);
  let dots = 0; // dot units in the segment so far; -1 once it has anything else
  for (let i = 0; i <= end;) {
    const sep = i === end ? 1 : separatorAt(url, i);
    if (sep > 0) {
      if (dots === 1 || dots === 2) return true;
      dots = 0;
      i += sep;
      continue;
    }
    if (url.charCodeAt(i) === 59 /* ; */) {
      if (dots === 1 || dots === 2) return true;
      dots = -1;
      i++;
      continue;
    }
    const dot = dotAt(url, i);
    if (dot > 0 && dots !== -1) {
      dots++;
      i += dot;
    } else {
      dots = -1;
      i += dot > 0 ? dot : 1;
    }
  }
  return false;
}

function pathEnd(url: string): number {
  const q = url.indexOf('?');
  return q === -1 ? url.length : q;
}

/** Length of a segment separator at `i` (/ \ %2f %5c), or 0. */
function separatorAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 47 || c === 92) return 1;
  if (c !== 37 /* % */) return 0;
  const a = s.charCodeAt(i + 1);
  const b = s.charCodeAt(i + 2) | 32;
  return (a === 50 && b === 102) || (a === 53 && b === 99) ? 3 : 0; // %2f, %5c
}

/** Length of a dot at `i` (. or %2e), or 0. */
function dotAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 46) return 1;
  return c === 37 && s.charCodeAt(i + 1) === 50 && (s.charCodeAt(i + 2) | 32) === 101 ? 3 : 0;
}

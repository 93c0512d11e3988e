/**
 * Pure request/response rewriting for the relay: where a request goes and which headers
 * travel with it. Kept free of I/O so that each rule is unit-tested on its own.
 */

/** Hop-by-hop headers (RFC 9110 7.6.1), lower case. `host` and `content-length` are set by the client side. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request headers the relay does not pass on as the caller sent them: those it writes
 * itself on the way to the destination (Host, Content-Length, X-Forwarded-Host/-Proto),
 * Expect (it answers that itself), and claims about earlier hops that it cannot vouch
 * for and does not rewrite (Forwarded, X-Real-IP, X-Forwarded-Port): a destination that
 * trusts its proxy would otherwise take a caller's word for its address. X-Forwarded-For
 * is appended to, as proxies do: its last entry is the relay's own observation.
 */
const REPLACED = [
  'host',
  'content-length',
  'x-forwarded-proto',
  'x-forwarded-host',
  'expect',
  'forwarded',
  'x-real-ip',
  'x-forwarded-port',
];

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-');
}

/** isHopByHop for a name as it came on the wire, lower-casing only names that could be one. */
export function isHopByHopName(name: string): boolean {
  const c = name.charCodeAt(0) | 32;
  // Every hop-by-hop name starts with c, k, p, t or u.
  if (c !== 99 && c !== 107 && c !== 112 && c !== 116 && c !== 117) return false;
  return isHopByHop(name.toLowerCase());
}

/** Whether a request header is not passed on as it came: hop-by-hop, or one the relay writes itself. */
export function notForwarded(name: string): boolean {
  if (isHopByHopName(name)) return true;
  for (const replaced of REPLACED) if (headerNameIs(name, replaced)) return true;
  return false;
}

/**
 * Whether a header name as it came on the wire is `lowerName`, ignoring ASCII case.
 * Compares in place: the hot path lower-cases no string to find out.
 */
export function headerNameIs(name: string, lowerName: string): boolean {
  if (name.length !== lowerName.length) return false;
  for (let i = 0; i < lowerName.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}

/** The first coding other than chunked in one Transfer-Encoding value. */
export function otherCoding(transferEncoding: string): string | null {
  for (const coding of transferEncoding.split(',')) {
    const c = coding.trim().toLowerCase();
    if (c !== '' && c !== 'chunked') return c;
  }
  return null;
}

/** The first value of a header in a flat [name, value, ...] list, found in any case. */
export function headerValue(rawHeaders: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (headerNameIs(rawHeaders[i], lowerName)) return rawHeaders[i + 1];
  return undefined;
}

/** A destination, resolved once: where to connect and what Host it expects. */
export interface Destination {
  url: URL;
  origin: string;
  host: string;
  protocol: string;
  /** Without the brackets of an IPv6 literal: what a socket connects to. */
  hostname: string;
  port: number;
  /** The URL's path (a prefix of every request's) and query ("" or "?..."), read once. */
  pathname: string;
  search: string;
}

export function resolveDestination(url: URL): Destination {
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return { url, origin: url.origin, host: url.host, protocol: url.protocol, hostname, port, pathname: url.pathname, search: url.search };
}

/** Joins two URL paths with exactly one slash between them, as Go's httputil does. */
export function joinPath(base: string, path: string): string {
  const a = base.endsWith('/');
  const b = path.startsWith('/');
  if (a && b) return base + path.slice(1);
  if (!a && !b) return `${base}/${path}`;
  return base + path;
}

/**
 * The path and query to request at the destination for an incoming `req.url`:
 * the destination's path prefix joined with the request's path, queries merged.
 */
export function destinationPath(destination: { readonly pathname: string; readonly search: string }, requestUrl: string): string {
  const q = requestUrl.indexOf('?');
  const path = q === -1 ? requestUrl : requestUrl.slice(0, q);
  const query = q === -1 ? '' : requestUrl.slice(q + 1);
  const basePath = destination.pathname;
  const joined = basePath === '/' || basePath === '' ? (path === '' ? '/' : path) : joinPath(basePath, path);
  const baseQuery = destination.search.length > 1 ? destination.search.slice(1) : '';
  if (baseQuery === '' && query === '') return joined;
  if (baseQuery === '' || query === '') return `${joined}?${baseQuery}${query}`;
  return `${joined}?${baseQuery}&${query}`;
}

/** The names listed in a Connection header, lower case; they are hop-by-hop for this message. */
function connectionListed(rawHeaders: readonly string[]): Set<string> | null {
  let values: string[] | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) if (headerNameIs(rawHeaders[i], 'connection')) (values ??= []).push(rawHeaders[i + 1]);
  return values === null ? null : connectionTokens(values);
}

/** The names a Connection header lists beside the hop-by-hop ones (which go anyway), lower case; null for none. */
function connectionTokens(values: readonly string[]): Set<string> | null {
  let listed: Set<string> | null = null;
  for (const value of values) {
    // Nearly every message says just keep-alive or close: nothing to split.
    if (headerNameIs(value, 'keep-alive') || headerNameIs(value, 'close')) continue;
    for (const token of value.split(',')) {
      const t = token.trim().toLowerCase();
      if (t && !isHopByHop(t)) (listed ??= new Set()).add(t);
    }
  }
  return listed;
}

export interface ForwardContext {
  /**
   * The Host to send; null: the destination's own authority, which the HTTP client writes
   * itself (undici does, from the pool's origin).
   */
  destinationHost: string | null;
  /** The address of the peer that sent the request. */
  clientAddress: string | undefined;
}

/**
 * Request headers for the destination, as a flat [name, value, ...] list: end-to-end
 * headers unchanged and in order (duplicates kept), hop-by-hop ones dropped, Host set to
 * the destination's, X-Forwarded-For appended to, X-Forwarded-Host/-Proto set.
 */
export function forwardRequestHeaders(rawHeaders: string[], ctx: ForwardContext): string[] {
  const listed = connectionListed(rawHeaders);
  const out: string[] = ctx.destinationHost === null ? [] : ['host', ctx.destinationHost];
  let originalHost = '';
  let forwardedFor = '';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (headerNameIs(name, 'host')) {
      originalHost = rawHeaders[i + 1];
      continue;
    }
    if (headerNameIs(name, 'x-forwarded-for')) {
      forwardedFor = forwardedFor ? `${forwardedFor}, ${rawHeaders[i + 1]}` : rawHeaders[i + 1];
      continue;
    }
    if (notForwarded(name) || (listed !== null && listed.has(name.toLowerCase()))) continue;
    out.push(name, rawHeaders[i + 1]);
  }
  const client = ctx.clientAddress ?? '';
  const xff = forwardedFor && client ? `${forwardedFor}, ${client}` : forwardedFor || client;
  if (xff) out.push('x-forwarded-for', xff);
  if (originalHost) out.push('x-forwarded-host', originalHost);
  out.push('x-forwarded-proto', 'http');
  return out;
}

/**
 * The request's end-to-end headers, for keeping the request to send it later: hop-by-hop
 * ones (and those `Connection` names) belong to the connection it came on, and
 * Content-Length is the body's own. Host and X-Forwarded-* stay, for forwardRequestHeaders
 * to use when the request leaves.
 */
export function endToEndHeaders(rawHeaders: string[]): string[] {
  const listed = connectionListed(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i].toLowerCase();
    // Expect: 100-continue was answered by the relay, which has the whole body.
    if (lower === 'content-length' || lower === 'expect' || isHopByHop(lower) || (listed !== null && listed.has(lower))) continue;
    out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

/** Response headers as undici gives them: lower-case names, repeated ones as arrays. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/**
 * Response headers for the caller, as a flat [name, value, ...] list for writeHead: the
 * destination's, less hop-by-hop ones and those its Connection header names.
 * Content-Length stays unless the body came chunked (then the framing is the relay's own).
 */
export function forwardResponseHeaders(headers: ResponseHeaders): string[] {
  const connection = headers.connection;
  const listed = connection === undefined ? null : connectionTokens(typeof connection === 'string' ? [connection] : connection);
  const chunked = headers['transfer-encoding'] !== undefined;
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'content-length') {
      if (chunked) continue;
    } else if (isHopByHop(name) || (listed !== null && listed.has(name))) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  return out;
}

/** Strips IPv4-mapped IPv6 notation so that X-Forwarded-For shows 127.0.0.1, not ::ffff:127.0.0.1. */
export function clientAddress(remote: string | undefined): string | undefined {
  return remote?.startsWith('::ffff:') ? remote.slice(7) : remote;
}

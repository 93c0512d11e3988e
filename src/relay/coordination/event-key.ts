import { createHash } from 'node:crypto';

/**
 * An event's identity across replicas, as a fixed-size Redis key suffix:
 *
 * - the first delivery-id header present, in the order of REDIS_EVENT_ID_HEADERS
 *   (X-GitHub-Delivery, X-Gitlab-Event-UUID, X-Gitea-Delivery, ...): `id:` + SHA-256 of
 *   the header's lower-case name, a NUL and its first value;
 * - otherwise `digest:` + SHA-256 of the method, the request target (path and query),
 *   every header whose name ends in `-event` (X-GitHub-Event, X-Gitlab-Event, ...; names
 *   lower-cased, sorted, values as sent) and the body's bytes.
 *
 * Hashing keeps every key the same size whatever a sender puts in its headers. Two
 * replicas compute the same identity for the same event, since the smee client of each
 * forwards the same method, path, headers and body.
 */
export function eventKey(
  method: string,
  url: string,
  rawHeaders: readonly string[],
  body: Buffer | null,
  idHeaders: readonly string[],
): string {
  for (const wanted of idHeaders) {
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i].length === wanted.length && rawHeaders[i].toLowerCase() === wanted) {
        const value = rawHeaders[i + 1].trim();
        if (value !== '') return `id:${createHash('sha256').update(wanted).update('\0').update(value).digest('base64url')}`;
      }
    }
  }
  const events: Array<[string, string]> = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name.endsWith('-event')) events.push([name, rawHeaders[i + 1]]);
  }
  events.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const h = createHash('sha256').update(method).update('\0').update(url).update('\0');
  for (const [n, v] of events) h.update(n).update(':').update(v).update('\n');
  h.update('\0');
  if (body !== null) h.update(body);
  return `digest:${h.digest('base64url')}`;
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The management port's access rules, as pure functions and a token file reader; the
 * guard (admin.guard.ts) applies them to requests.
 *
 * Open to anyone who reaches the port: reads (GET, HEAD) other than /debug/* - probes,
 * /metrics, /status and the read-only reports. Restricted ("admin"): every other method
 * (the spool's requeue and delete) and all of /debug/* (heap snapshots, CPU profiles).
 * With MANAGEMENT_TOKEN_FILE set, an admin request needs `Authorization: Bearer <token>`
 * from any caller, loopback included; without it, only loopback callers are let in.
 */

/** Whether a request on the management port changes state or exposes memory. */
export function isAdminRequest(method: string, url: string): boolean {
  const path = url.split('?', 1)[0];
  if (path === '/debug' || path.startsWith('/debug/')) return true;
  const m = method.toUpperCase();
  return m !== 'GET' && m !== 'HEAD';
}

/**
 * Whether a peer address is this host's loopback: 127.0.0.0/8, ::1, or 127.x written as
 * an IPv4-mapped IPv6 address (a dual-stack socket reports IPv4 peers so). Anything else,
 * unparseable or missing included, is not.
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  let a = address.trim().toLowerCase();
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  if (isIPv4(a)) return a.startsWith('127.');
  if (!isIPv6(a)) return false;
  const g = ipv6Groups(a);
  const zeros = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeros(5) && g[5] === 0xffff) return g[6] >> 8 === 127; // ::ffff:127.x.y.z
  return zeros(7) && g[7] === 1; // ::1
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail becomes two). */
function ipv6Groups(a: string): number[] {
  const words = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((w) => {
          if (!w.includes('.')) return [parseInt(w, 16)];
          const [b0, b1, b2, b3] = w.split('.').map(Number);
          return [(b0 << 8) | b1, (b2 << 8) | b3];
        });
  const [head, tail] = a.split('::');
  const left = words(head);
  if (tail === undefined) return left;
  const right = words(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The token out of an Authorization header: `Bearer <token>` (scheme in any case), else null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : null;
}

/** Compares in time that does not depend on where the two differ, nor on their lengths. */
export function tokensMatch(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** A token file's content as the token: surrounding whitespace (a trailing newline) is not part of it. */
export function tokenFromFile(text: string): string {
  return text.trim();
}

/** Shortest token accepted, in characters. */
export const MIN_TOKEN_LENGTH = 16;

/** What is wrong with a token file's content, or null. Never includes the content. */
export function tokenProblem(text: string): string | null {
  const token = tokenFromFile(text);
  if (token === '') return 'the file is empty';
  if (/\s/.test(token)) return 'the token must be one word (no spaces or line breaks inside)';
  if (token.length < MIN_TOKEN_LENGTH) return `the token is shorter than ${MIN_TOKEN_LENGTH} characters`;
  return null;
}

/**
 * The token at a path, read again whenever the file changes (a Secret volume swaps its
 * files on rotation: a new inode, size or modification time). A file that turns
 * unreadable or invalid keeps the last good token in force, and `onProblem` is told
 * (with the reason, never the content).
 */
export class TokenFile {
  private token: string | null = null;
  private seen = '';

  constructor(
    readonly path: string,
    private readonly onProblem: (reason: string) => void = () => undefined,
  ) {}

  async current(): Promise<string | null> {
    try {
      const s = await stat(this.path);
      const key = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (key === this.seen && this.token !== null) return this.token;
      const text = await readFile(this.path, 'utf8');
      const problem = tokenProblem(text);
      if (problem !== null) {
        this.onProblem(problem);
      } else {
        this.token = tokenFromFile(text);
        this.seen = key;
      }
    } catch (e) {
      this.onProblem(`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return this.token;
  }
}

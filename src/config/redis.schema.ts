import { z } from 'zod';
import { parseDuration } from './config.schema';

/**
 * The settings of coordination between replicas through Redis (or Valkey): on when
 * REDIS_URL is set. Spread into the environment schema; the rules that need files or
 * span settings are in redisProblems.
 */

const text = z.string().trim();

const redisUrl = text.refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'expected a redis:// or rediss:// URL (redis://host:6379/0)');

const ms = (min: number, max: number, what: string) => text.transform((v, ctx) => {
  const n = parseDuration(v);
  if (n === null || n < min || n > max) {
    ctx.addIssue({ code: 'custom', message: `expected ${what}` });
    return z.NEVER;
  }
  return n;
});

const positiveInt = text.regex(/^\d+$/, 'expected a whole number').transform(Number)
  .refine((n) => n > 0 && Number.isSafeInteger(n), 'expected a whole number above 0');

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A comma list of header names, kept in order, lower-cased. */
const headerNames = text.transform((v, ctx) => {
  const names = v.split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const n of names) if (!HEADER_NAME.test(n)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(n)} is not a header name` });
  if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'expected a comma list of header names' });
  return names.map((n) => n.toLowerCase());
});

/** The delivery-id headers of the webhook senders in use, in the order they are looked for. */
export const DEFAULT_EVENT_ID_HEADERS = 'X-GitHub-Delivery,X-Gitlab-Event-UUID,X-Gitea-Delivery,X-Forgejo-Delivery,X-Gogs-Delivery,X-Request-UUID';

export const redisSettings = {
  REDIS_URL: redisUrl.optional(),
  REDIS_PASSWORD_FILE: text.min(1).optional(),
  REDIS_KEY_PREFIX: text.regex(/^[\x21-\x7e]{1,64}$/, 'expected 1 to 64 printable characters without spaces').prefault('pod-sidecar:'),
  REDIS_TIMEOUT: ms(10, 10_000, 'a duration from 10ms to 10s').prefault('250ms'),
  REDIS_LEASE: ms(1_000, 600_000, 'a duration from 1s to 10m').prefault('15s'),
  REDIS_DONE_TTL: ms(60_000, 7 * 86_400_000, 'a duration from 1m to 168h').prefault('15m'),
  REDIS_HOLD_MAX_BYTES: positiveInt.prefault('67108864'),
  REDIS_EVENT_ID_HEADERS: headerNames.prefault(DEFAULT_EVENT_ID_HEADERS),
};

type RedisSettings = z.output<z.ZodObject<typeof redisSettings>>;

export interface CoordinationConfig {
  /** As set; it may hold a password and is never logged or shown. */
  url: string;
  /** Read at start-up and on every reconnection; null: the URL's password, if any. */
  passwordFile: string | null;
  keyPrefix: string;
  /** Every Redis command's bound: past it the relay goes on without coordination. */
  commandTimeoutMs: number;
  /** How long a claim holds without renewal: a replica that died is replaced after this. */
  leaseMs: number;
  /** How long a delivered (or given-up) event's mark stays. */
  doneTtlMs: number;
  /** Bodies held for events another replica delivers, at most, in bytes. */
  holdMaxBytes: number;
  /** Lower-cased, in the order they are looked for. */
  eventIdHeaders: string[];
  /** This replica's name in claims: the host name (the pod's) and a random suffix per process. */
  replica: string;
}

export function toCoordinationConfig(s: RedisSettings, replica: string): CoordinationConfig | null {
  if (s.REDIS_URL === undefined) return null;
  return {
    url: s.REDIS_URL,
    passwordFile: s.REDIS_PASSWORD_FILE ?? null,
    keyPrefix: s.REDIS_KEY_PREFIX,
    commandTimeoutMs: s.REDIS_TIMEOUT,
    leaseMs: s.REDIS_LEASE,
    doneTtlMs: s.REDIS_DONE_TTL,
    holdMaxBytes: s.REDIS_HOLD_MAX_BYTES,
    eventIdHeaders: s.REDIS_EVENT_ID_HEADERS,
    replica,
  };
}

/** Rules across settings and files, on the raw text; messages name files, never their content. */
export function redisProblems(raw: Record<string, string | undefined>, readFile: (path: string) => string): string[] {
  const problems: string[] = [];
  if (raw.REDIS_URL === undefined) {
    for (const name of ['REDIS_PASSWORD_FILE']) if (raw[name] !== undefined) problems.push(`${name}: needs REDIS_URL`);
    return problems;
  }
  const file = raw.REDIS_PASSWORD_FILE?.trim();
  if (file !== undefined) {
    try {
      if (readFile(file).trim() === '') problems.push(`REDIS_PASSWORD_FILE=${JSON.stringify(file)}: the file is empty`);
    } catch (e) {
      problems.push(`REDIS_PASSWORD_FILE=${JSON.stringify(file)}: cannot read it (${(e as Error).message})`);
    }
  }
  const lease = parseDuration(raw.REDIS_LEASE?.trim() ?? '15s');
  const timeout = parseDuration(raw.REDIS_TIMEOUT?.trim() ?? '250ms');
  if (lease !== null && timeout !== null && timeout * 4 > lease) {
    problems.push(`REDIS_TIMEOUT=${JSON.stringify(raw.REDIS_TIMEOUT ?? '250ms')}: expected at most a quarter of REDIS_LEASE, so that a claim can be renewed in time`);
  }
  return problems;
}

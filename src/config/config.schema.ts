import { z } from 'zod';

/**
 * The settings, as environment variables (or the same names as top-level keys of the
 * YAML file at SIDECAR_CONFIG). Every value arrives as a string from the environment,
 * so each rule parses text; YAML scalars are turned into text before they get here.
 */

const text = z.string().trim();

const port = text.regex(/^\d+$/, 'expected a TCP port number').transform(Number)
  .pipe(z.number().int().min(1, 'expected a port from 1 to 65535').max(65535, 'expected a port from 1 to 65535'));

/** Whole or fractional seconds, > 0 unless `allowZero`. */
const seconds = (allowZero = false) =>
  text.regex(/^\d+(\.\d+)?$/, 'expected a number of seconds').transform(Number)
    .refine((n) => allowZero || n > 0, allowZero ? 'expected 0 or more seconds' : 'expected more than 0 seconds');

const positiveInt = text.regex(/^\d+$/, 'expected a whole number').transform(Number)
  .refine((n) => n > 0 && Number.isSafeInteger(n), 'expected a whole number above 0');

const bool = text.toLowerCase().refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v),
  'expected true or false').transform((v) => v === 'true' || v === '1' || v === 'yes');

export const httpUrl = text.refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}, 'expected an absolute http:// or https:// URL');

/** Go-style duration as the metrics pusher takes it ("30s", "1m30s", "500ms") or plain seconds. */
export function parseDuration(v: string): number | null {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const m of v.matchAll(re)) {
    if (m.index !== consumed) return null;
    total += Number(m[1]) * units[m[2]];
    consumed += m[0].length;
  }
  return consumed === v.length && consumed > 0 ? total : null;
}

const duration = text.transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30s, 1m or 500ms' });
    return z.NEVER;
  }
  return ms;
});

/** A request header name (an HTTP token), or `none` / an empty value in the file to switch the feature off (null). */
const dedupHeader = text.refine((v) => v === '' || v.toLowerCase() === 'none' || /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v),
  'expected a header name, or none').transform((v) => (v === '' || v.toLowerCase() === 'none' ? null : v));

export const envSchema = z.object({
  // kept verbatim from smee-sidecar
  DOWNSTREAM_SERVICE_URL: httpUrl.optional(),
  SMEE_CHANNEL_URL: httpUrl.optional(),
  HEALTH_CHECK_TIMEOUT_SECONDS: seconds().prefault('20'),
  HEALTH_CHECK_INTERVAL_SECONDS: seconds().prefault('30'),
  SHARED_VOLUME_PATH: text.min(1).prefault('/shared'),
  HEALTH_FILE_PATH: text.min(1).optional(),
  INSECURE_SKIP_VERIFY: bool.prefault('false'),
  ENABLE_PPROF: bool.prefault('false'),
  // listeners
  RELAY_PORT: port.prefault('8080'),
  MANAGEMENT_PORT: port.prefault('9100'),
  LISTEN_HOST: text.min(1).prefault('0.0.0.0'),
  // relay
  RELAY_TIMEOUT_SECONDS: seconds().prefault('30'),
  RELAY_MAX_BODY_BYTES: positiveInt.prefault('26214400'),
  RELAY_MAX_CONNECTIONS: positiveInt.prefault('64'),
  RELAY_MODE: text.toLowerCase().pipe(z.enum(['proxy', 'spool'], 'expected proxy or spool')).prefault('proxy'),
  SPOOL_PATH: text.min(1).optional(),
  SPOOL_MAX_BYTES: positiveInt.prefault('1073741824'),
  SPOOL_MAX_AGE: duration.prefault('24h'),
  SPOOL_RETRY_INITIAL: duration.prefault('1s'),
  SPOOL_RETRY_MAX: duration.prefault('5m'),
  SPOOL_CONCURRENCY: positiveInt.prefault('1'),
  SPOOL_DEDUP_HEADER: dedupHeader.prefault('X-GitHub-Delivery'),
  SPOOL_DEDUP_WINDOW: duration.prefault('1h'),
  SHUTDOWN_TIMEOUT_SECONDS: seconds().prefault('20'),
  // logs
  LOG_LEVEL: text.toLowerCase().pipe(z.enum(['debug', 'info', 'warn', 'error'], 'expected debug, info, warn or error')).prefault('info'),
  LOG_FORMAT: text.toLowerCase().pipe(z.enum(['json', 'pretty'], 'expected json or pretty')).prefault('json'),
}).superRefine((s, ctx) => {
  if (s.SPOOL_RETRY_INITIAL > s.SPOOL_RETRY_MAX) {
    ctx.addIssue({ code: 'custom', path: ['SPOOL_RETRY_INITIAL'], message: `expected at most SPOOL_RETRY_MAX (${s.SPOOL_RETRY_MAX / 1000} s)` });
  }
});

export type EnvSettings = z.output<typeof envSchema>;

/** The names a user may set, for the YAML file's unknown-key check and for messages. */
export const SETTING_NAMES = Object.keys(envSchema.shape) as (keyof EnvSettings)[];

/** Settings whose values never appear in a message or a log line. */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set<string>([]);

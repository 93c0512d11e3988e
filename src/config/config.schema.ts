import { z } from 'zod';
import { redisSettings } from './redis.schema';
import { WEBHOOK_AUTH_SETTINGS } from './webhook-auth.schema';

/**
 * The settings, as environment variables (or the same names as top-level keys of the
 * YAML file at SIDECAR_CONFIG). Every value arrives as a string from the environment,
 * so each rule parses text; YAML scalars are turned into text before they get here.
 */

const text = z.string().trim();

/**
 * Kubernetes injects `<SERVICE>_PORT=tcp://<ip>:<port>` into every container for every
 * Service in the namespace while enableServiceLinks is on: a Service named "agent" sets
 * AGENT_PORT, one named "relay" RELAY_PORT. Such a value gets its own explanation.
 */
export const SERVICE_LINK_HINT = 'expected a TCP port number, not a URL: a tcp://… value is what Kubernetes injects for a Service of the same name (set enableServiceLinks: false in the pod spec)';

const port = text.regex(/^\d+$/, { error: (issue) => (/^(tcp|udp|sctp):\/\//i.test(String(issue.input)) ? SERVICE_LINK_HINT : 'expected a TCP port number') })
  .transform(Number)
  .pipe(z.number().int().min(1, 'expected a port from 1 to 65535').max(65535, 'expected a port from 1 to 65535'));

/** Whole or fractional seconds, > 0 unless `allowZero`. */
const seconds = (allowZero = false) =>
  text.regex(/^\d+(\.\d+)?$/, 'expected a number of seconds').transform(Number)
    .refine((n) => allowZero || n > 0, allowZero ? 'expected 0 or more seconds' : 'expected more than 0 seconds');

const positiveInt = text.regex(/^\d+$/, 'expected a whole number').transform(Number)
  .refine((n) => n > 0 && Number.isSafeInteger(n), 'expected a whole number above 0');

const bool = text.toLowerCase().refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v),
  'expected true or false').transform((v) => v === 'true' || v === '1' || v === 'yes');

export function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

export const httpUrl = text.refine(isHttpUrl, 'expected an absolute http:// or https:// URL');

/** A comma-separated list of http(s) URLs; empty items (a trailing comma) are dropped. */
const httpUrlList = text.transform((v, ctx) => {
  const items = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  const bad = items.filter((x) => !isHttpUrl(x));
  if (items.length === 0) ctx.addIssue({ code: 'custom', message: 'expected a comma-separated list of http:// or https:// URLs' });
  for (const item of bad) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(item)} is not an absolute http:// or https:// URL` });
  return items;
});

/** What a status file may be told to start as. */
const adminStatus = text.toLowerCase().pipe(z.enum(['ready', 'drain', 'maint'], 'expected ready, drain or maint'));

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

/** One port or a comma-separated list of them; duplicates collapse, order is kept. */
const portList = text.transform((v, ctx) => {
  const items = v.split(',').map((p) => p.trim());
  const ports: number[] = [];
  for (const item of items) {
    const n = /^\d+$/.test(item) ? Number(item) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      ctx.addIssue({ code: 'custom', message: /^(tcp|udp|sctp):\/\//i.test(v) ? SERVICE_LINK_HINT : 'expected a TCP port or a comma-separated list of ports (1 to 65535)' });
      return z.NEVER;
    }
    if (!ports.includes(n)) ports.push(n);
  }
  return ports;
});

/** Whole seconds from 0 to `max`: the probe scripts do integer arithmetic on them. */
const wholeSeconds = (max: number) => text.regex(/^\d+$/, 'expected whole seconds').transform(Number)
  .refine((n) => n <= max, `expected whole seconds from 0 to ${max}`);

const duration = text.transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30s, 1m or 500ms' });
    return z.NEVER;
  }
  return ms;
});

/** A Prometheus label name a user may set: not reserved (`__` prefix), as the remote-write specification requires. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** `name=value,name=value`: the extra labels of every pushed series. */
const labelPairs = text.transform((v, ctx) => {
  const pairs: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const item of v.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = item.indexOf('=');
    const name = eq === -1 ? item : item.slice(0, eq).trim();
    const value = eq === -1 ? '' : item.slice(eq + 1).trim();
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      ctx.addIssue({ code: 'custom', message: `label name ${JSON.stringify(name)} must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __` });
    } else if (value === '') {
      ctx.addIssue({ code: 'custom', message: `label ${name} needs a non-empty value (name=value)` });
    } else if (seen.has(name)) {
      ctx.addIssue({ code: 'custom', message: `label ${name} is set twice` });
    } else {
      seen.add(name);
      pairs.push([name, value]);
    }
  }
  return pairs;
});

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the remote-write client sets itself, or that have their own setting. */
const OWN_HEADERS = new Set(['content-type', 'content-encoding', 'content-length', 'user-agent', 'x-prometheus-remote-write-version', 'authorization', 'host']);

/** `Name=value,Name=value`: extra request headers, such as Mimir's X-Scope-OrgID. */
const headerPairs = text.transform((v, ctx) => {
  const pairs: Array<[string, string]> = [];
  for (const item of v.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = item.indexOf('=');
    const name = eq === -1 ? item : item.slice(0, eq).trim();
    const value = eq === -1 ? '' : item.slice(eq + 1).trim();
    if (!HEADER_NAME.test(name) || value === '') {
      ctx.addIssue({ code: 'custom', message: 'expected Name=value pairs separated by commas' });
    } else if (OWN_HEADERS.has(name.toLowerCase())) {
      ctx.addIssue({ code: 'custom', message: `header ${name} is set by the sidecar (authorization: use REMOTE_WRITE_BEARER_TOKEN_FILE or REMOTE_WRITE_USERNAME)` });
    } else {
      pairs.push([name, value]);
    }
  }
  return pairs;
});

const remoteWriteUrl = httpUrl.refine((v) => {
  const u = new URL(v);
  return u.username === '' && u.password === '';
}, 'expected no credentials in the URL: use REMOTE_WRITE_USERNAME with REMOTE_WRITE_PASSWORD_FILE');

/** A comma list of http(s) URLs, each once. */
const urlList = text.transform((v, ctx) => {
  const urls = v.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of urls) {
    if (!httpUrl.safeParse(u).success) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(u)}: expected an absolute http:// or https:// URL` });
  }
  if (new Set(urls).size !== urls.length) ctx.addIssue({ code: 'custom', message: 'a URL is listed twice' });
  if (urls.length === 0) ctx.addIssue({ code: 'custom', message: 'expected a comma list of URLs' });
  return urls;
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
  MANAGEMENT_TOKEN_FILE: text.min(1).optional(),
  // relay
  RELAY_TIMEOUT_SECONDS: seconds().prefault('30'),
  RELAY_MAX_BODY_BYTES: positiveInt.prefault('26214400'),
  RELAY_MAX_CONNECTIONS: positiveInt.prefault('64'),
  RELAY_MAX_BUFFERED_BYTES: positiveInt.optional(),
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
  // webhook authenticity (webhook-auth.schema.ts)
  ...WEBHOOK_AUTH_SETTINGS,
  // agent (drain control and HAProxy agent-check; signal-sidecar's names where it has them)
  AGENT_PORT: port.optional(),
  AGENT_MAXCONN: positiveInt.optional(),
  STATUS_PATH: text.min(1).optional(),
  STATUS_INITIAL: adminStatus.optional(),
  UPSTREAM_HEALTH_URLS: httpUrlList.optional(),
  UPSTREAM_TIMEOUT_SECONDS: seconds().prefault('3'),
  POLLING_INTERVAL: seconds().prefault('5'),
  HEALTH_DAMPENING_INTERVAL: seconds(true).prefault('30'),
  DRAIN_GRACE_INTERVAL: seconds(true).prefault('120'),
  // the Jitsi preset, as signal-sidecar reads them
  JICOFO_ORIG: httpUrl.optional(),
  PROSODY_ORIG: httpUrl.optional(),
  PARTICIPANT_MAX: positiveInt.optional(),
  WEIGHT_PARTICIPANTS: bool.optional(),
  CENSUS_POLL: bool.optional(),
  CENSUS_HOST: text.min(1).optional(),
  // connections
  MONITOR_PORT: portList.optional(),
  REFRESH_RATE_SECONDS: text.regex(/^\d+(\.\d+)?$/, 'expected a number of seconds').transform(Number)
    .refine((n) => n >= 0.1 && n <= 3600, 'expected from 0.1 to 3600 seconds').prefault('10'),
  IDLE_SETTLE_SECONDS: wholeSeconds(3600).prefault('5'),
  CONNECTIONS_FILE_PATH: text.min(1).optional(),
  PROC_NET_PATH: text.min(1).prefault('/proc/net'),
  // remote write (metrics push)
  PROMETHEUS_REMOTE_WRITE_URL: remoteWriteUrl.optional(),
  PUSH_INTERVAL: duration.prefault('30s'),
  REMOTE_WRITE_TIMEOUT: duration.prefault('30s'),
  REMOTE_WRITE_QUEUE_SIZE: positiveInt.prefault('60'),
  REMOTE_WRITE_MIN_BACKOFF: duration.prefault('30ms'),
  REMOTE_WRITE_MAX_BACKOFF: duration.prefault('5s'),
  REMOTE_WRITE_LABELS: labelPairs.optional(),
  REMOTE_WRITE_HEADERS: headerPairs.optional(),
  REMOTE_WRITE_USERNAME: text.min(1).optional(),
  REMOTE_WRITE_PASSWORD: text.min(1).optional(),
  REMOTE_WRITE_PASSWORD_FILE: text.min(1).optional(),
  REMOTE_WRITE_BEARER_TOKEN_FILE: text.min(1).optional(),
  REMOTE_WRITE_CA_FILE: text.min(1).optional(),
  REMOTE_WRITE_CERT_FILE: text.min(1).optional(),
  REMOTE_WRITE_KEY_FILE: text.min(1).optional(),
  REMOTE_WRITE_INSECURE_SKIP_VERIFY: bool.prefault('false'),
  SCRAPE_TARGETS: urlList.optional(),
  SCRAPE_TIMEOUT: duration.prefault('10s'),
  // coordination between replicas (src/config/redis.schema.ts)
  ...redisSettings,
  // logs
  LOG_LEVEL: text.toLowerCase().pipe(z.enum(['debug', 'info', 'warn', 'error'], 'expected debug, info, warn or error')).prefault('info'),
  LOG_FORMAT: text.toLowerCase().pipe(z.enum(['json', 'pretty'], 'expected json or pretty')).prefault('json'),
}).superRefine((s, ctx) => {
  if (s.RELAY_MAX_BUFFERED_BYTES !== undefined && s.RELAY_MAX_BUFFERED_BYTES < s.RELAY_MAX_BODY_BYTES) {
    ctx.addIssue({ code: 'custom', path: ['RELAY_MAX_BUFFERED_BYTES'], message: `expected at least RELAY_MAX_BODY_BYTES (${s.RELAY_MAX_BODY_BYTES}): one body of the largest size must fit` });
  }
  if (s.SPOOL_RETRY_INITIAL > s.SPOOL_RETRY_MAX) {
    ctx.addIssue({ code: 'custom', path: ['SPOOL_RETRY_INITIAL'], message: `expected at most SPOOL_RETRY_MAX (${s.SPOOL_RETRY_MAX / 1000} s)` });
  }
});

export type EnvSettings = z.output<typeof envSchema>;

/** The names a user may set, for the YAML file's unknown-key check and for messages. */
export const SETTING_NAMES = Object.keys(envSchema.shape) as (keyof EnvSettings)[];

/** Settings whose values never appear in a message or a log line. */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set<string>(['REMOTE_WRITE_PASSWORD', 'REMOTE_WRITE_HEADERS', 'WEBHOOK_SECRET']);

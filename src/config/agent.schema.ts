import { join } from 'node:path';
import { z } from 'zod';
import { type EnvSettings, isHttpUrl, parseDuration } from './config.schema';
import { describeIssue, pathText } from './dispatch.schema';
import type { AgentConfig, CensusConfig, LoadSourceConfig, UpstreamCheckConfig } from './sidecar-config';

/**
 * The agent's settings: environment variables (AGENT_PORT, UPSTREAM_HEALTH_URLS, the
 * signal-sidecar names of the Jitsi preset, ...) and the optional `agent` section of the
 * YAML file for what a variable cannot say well (upstreams with their own expectations,
 * a load source):
 *
 *   agent:
 *     statusPath: /shared/shard-status
 *     upstreams:
 *       - { name, url, expectStatus?: 200 | "2xx" | [..], timeout?: 3 | "500ms", retries?: 0,
 *           softDown?: { statuses?: [503], onTimeout?: false } | false }
 *     loadSource: { url, field: stats.participants, max: 5000, weighted?: true, timeout? }
 *
 * Checks from every source are polled together; their names must differ.
 */

/** The smee round trip's name among the agent's checks, when the health check is on. */
export const HEALTH_CHECK_INPUT = 'health-check';

/** HAProxy reads the line and closes at once; a peer that keeps the connection open is cut after this. */
export const AGENT_CONNECTION_TIMEOUT_MS = 5000;

/** signal-sidecar's defaults for the Jitsi preset. */
const JITSI = { jicofo: 'http://localhost:8888', prosody: 'http://localhost:5280', participantMax: 5000, retries: 2, healthBodyBytes: 256 };

const DEFAULT_SOFT_DOWN = { statuses: [503], onTimeout: false };
const NAME = /^[\x21-\x7e]{1,64}$/;

const expecting = (what: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined ? `required (${what})` : `expected ${what}`),
});

const url = z.string(expecting('an absolute http:// or https:// URL'))
  .refine(isHttpUrl, 'expected an absolute http:// or https:// URL')
  .transform((v) => new URL(v));

/** Seconds as a number, or a duration such as "500ms" or "3s"; in milliseconds. */
const timeout = z.union([z.number(), z.string()], expecting('seconds (3, 0.5) or a duration ("500ms")'))
  .transform((v, ctx) => {
    const ms = typeof v === 'number' ? v * 1000 : parseDuration(v.trim());
    if (ms === null || !(ms > 0) || !Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'expected more than 0 seconds (3, 0.5) or a duration ("500ms")' });
      return z.NEVER;
    }
    return ms;
  });

const statusCode = z.number(expecting('an HTTP status (100-599)')).int('expected an HTTP status (100-599)')
  .min(100, 'expected an HTTP status (100-599)').max(599, 'expected an HTTP status (100-599)');

/** 200, "200", "2xx": one status or one class, as an inclusive range. */
const statusSpec = z.union([z.number(), z.string()], expecting('a status (200) or a class ("2xx")'))
  .transform((v, ctx): [number, number] => {
    const t = String(v).trim().toLowerCase();
    const cls = /^([1-5])xx$/.exec(t);
    if (cls) return [Number(cls[1]) * 100, Number(cls[1]) * 100 + 99];
    const n = /^\d{3}$/.test(t) ? Number(t) : Number.NaN;
    if (n >= 100 && n <= 599) return [n, n];
    ctx.addIssue({ code: 'custom', message: 'expected a status (200) or a class ("2xx")' });
    return z.NEVER;
  });

/** One status or class, or a list of them; each item's problem keeps its place in the list. */
const expectStatus = z.unknown().transform((v, ctx) => {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one status' });
  const ranges: Array<[number, number]> = [];
  items.forEach((item, i) => {
    const r = statusSpec.safeParse(item);
    if (r.success) ranges.push(r.data);
    else ctx.addIssue({ code: 'custom', message: r.error.issues[0].message, path: Array.isArray(v) ? [i] : [] });
  });
  return ranges;
});

const softDown = z.union([
  z.literal(false),
  z.strictObject({
    statuses: z.array(statusCode, expecting('a list of HTTP statuses')).optional(),
    onTimeout: z.boolean(expecting('true or false')).optional(),
  }),
], expecting('{statuses?: [503], onTimeout?: true} or false'));

const upstream = z.strictObject({
  name: z.string(expecting('a name')).regex(NAME, 'expected a name of 1 to 64 printable characters without spaces').optional(),
  url,
  expectStatus: expectStatus.optional(),
  timeout: timeout.optional(),
  retries: z.number(expecting('a whole number from 0 to 10')).int('expected a whole number from 0 to 10').min(0, 'expected a whole number from 0 to 10').max(10, 'expected a whole number from 0 to 10').optional(),
  softDown: softDown.optional(),
}, expecting('an upstream: {name?, url, expectStatus?, timeout?, retries?, softDown?}'));

const fieldPath = z.string(expecting('a field path such as participants or stats.participants'))
  .refine((v) => v.split('.').every((step) => step.trim() !== ''), 'expected a field path such as participants or stats.participants');

const loadSource = z.strictObject({
  url,
  field: fieldPath,
  max: z.number(expecting('a number above 0')).positive('expected a number above 0').refine(Number.isFinite, 'expected a number above 0'),
  weighted: z.boolean(expecting('true or false')).optional(),
  timeout: timeout.optional(),
}, expecting('a load source: {url, field, max, weighted?, timeout?}'));

const section = z.strictObject({
  statusPath: z.string(expecting('a file path')).min(1, 'expected a file path').optional(),
  upstreams: z.array(upstream, expecting('a list of upstreams')).nullish(),
  loadSource: loadSource.nullish(),
}, expecting('a mapping: {statusPath?, upstreams?, loadSource?}'));

export type AgentSection = z.output<typeof section>;

/** Reads the file's `agent` section (null in YAML: an empty section). Problems are "agent.path: message". */
export function readAgentSection(doc: unknown): { section: AgentSection | null; problems: string[] } {
  const parsed = section.safeParse(doc ?? {});
  if (!parsed.success) return { section: null, problems: parsed.error.issues.flatMap((issue) => describeIssue(['agent'], issue, '')) };
  return { section: parsed.data, problems: [] };
}

/**
 * The agent's slice, or null when nothing switches it on: AGENT_PORT, UPSTREAM_HEALTH_URLS,
 * a setting of the Jitsi preset, or an `agent` section. `section` is undefined when the
 * file has none and null when it has one that did not parse (its problems are already listed).
 */
export function buildAgentConfig(s: EnvSettings, section: AgentSection | null | undefined, forceJitsi = false): { config: AgentConfig | null; problems: string[] } {
  const preset = forceJitsi || s.JICOFO_ORIG !== undefined || s.PROSODY_ORIG !== undefined || s.PARTICIPANT_MAX !== undefined || s.WEIGHT_PARTICIPANTS !== undefined
    || s.CENSUS_POLL !== undefined || s.CENSUS_HOST !== undefined;
  const on = s.AGENT_PORT !== undefined || s.UPSTREAM_HEALTH_URLS !== undefined || preset || section !== undefined;
  if (!on) return { config: null, problems: [] };

  const problems: string[] = [];
  const timeoutMs = s.UPSTREAM_TIMEOUT_SECONDS * 1000;
  const upstreams: Array<UpstreamCheckConfig & { from: string }> = [];
  let loadSource: LoadSourceConfig | null = null;

  if (preset) {
    const jicofo = stripTrailingSlashes(s.JICOFO_ORIG ?? JITSI.jicofo);
    const prosody = stripTrailingSlashes(s.PROSODY_ORIG ?? JITSI.prosody);
    const jitsiCheck = (name: string, at: string, soft: UpstreamCheckConfig['softDown']) => ({
      name, url: new URL(at), expectStatus: [[200, 200]] as Array<[number, number]>, timeoutMs, retries: JITSI.retries, softDown: soft, from: 'the Jitsi preset',
    });
    // jicofo answers 503 to /about/health under load while it still serves the conferences it
    // has; prosody may be slow to answer BOSH under load while it still works: both drain first.
    // /signal/report shows the start of jicofo's health answer, as signal-sidecar did.
    upstreams.push({ ...jitsiCheck('jicofo', `${jicofo}/about/health`, { statuses: [503], onTimeout: false }), keepBodyBytes: JITSI.healthBodyBytes });
    upstreams.push(jitsiCheck('jicofo-stats', `${jicofo}/stats`, { statuses: [], onTimeout: false }));
    upstreams.push(jitsiCheck('prosody', `${prosody}/http-bind`, { statuses: [], onTimeout: true }));
    loadSource = {
      url: new URL(`${jicofo}/stats`), field: 'participants', path: ['participants'],
      max: s.PARTICIPANT_MAX ?? JITSI.participantMax, weighted: s.WEIGHT_PARTICIPANTS ?? false, timeoutMs,
      extraFields: { conferences: ['conferences'] },
    };
  }

  let census: CensusConfig | null = null;
  if (preset && s.CENSUS_POLL === true) {
    if (s.CENSUS_HOST === undefined) problems.push('CENSUS_POLL=true: CENSUS_HOST is required (the conference host whose census prosody serves, e.g. conference.meet.example.com)');
    else census = { url: new URL(`${stripTrailingSlashes(s.PROSODY_ORIG ?? JITSI.prosody)}/room-census`), host: s.CENSUS_HOST, timeoutMs };
  }

  for (const [i, raw] of (s.UPSTREAM_HEALTH_URLS ?? []).entries()) {
    const u = new URL(raw);
    upstreams.push({ name: nameOf(u), url: u, expectStatus: [[200, 299]], timeoutMs, retries: 0, softDown: DEFAULT_SOFT_DOWN, from: `UPSTREAM_HEALTH_URLS item ${i + 1}` });
  }
  dedupeDerivedNames(upstreams);

  for (const [i, u] of (section?.upstreams ?? []).entries()) {
    upstreams.push({
      name: u.name ?? nameOf(u.url),
      url: u.url,
      expectStatus: u.expectStatus ?? [[200, 299]],
      timeoutMs: u.timeout ?? timeoutMs,
      retries: u.retries ?? 0,
      softDown: u.softDown === false ? { statuses: [], onTimeout: false } : u.softDown === undefined ? DEFAULT_SOFT_DOWN : {
        statuses: u.softDown.statuses ?? DEFAULT_SOFT_DOWN.statuses,
        onTimeout: u.softDown.onTimeout ?? DEFAULT_SOFT_DOWN.onTimeout,
      },
      from: pathText(['agent', 'upstreams', i, ...(u.name === undefined ? [] : ['name'])]),
    });
  }

  const seen = new Map<string, string>();
  for (const u of upstreams) {
    if (u.name === HEALTH_CHECK_INPUT) {
      problems.push(`${u.from}: "${HEALTH_CHECK_INPUT}" names the smee round trip among the agent's checks; choose another name`);
    } else if (seen.has(u.name)) {
      problems.push(`${u.from}: the check name "${u.name}" is also used by ${seen.get(u.name)}; names label metrics and must differ`);
    } else {
      seen.set(u.name, u.from);
    }
  }

  if (section?.loadSource) {
    if (loadSource) {
      problems.push('agent.loadSource: the Jitsi preset (JICOFO_ORIG, PROSODY_ORIG, PARTICIPANT_MAX or WEIGHT_PARTICIPANTS) already reads participants from jicofo /stats; keep one of the two');
    } else {
      const l = section.loadSource;
      loadSource = { url: l.url, field: l.field, path: l.field.split('.').map((x) => x.trim()), max: l.max, weighted: l.weighted ?? true, timeoutMs: l.timeout ?? timeoutMs };
    }
  }
  if (problems.length > 0) return { config: null, problems };

  const dampeningMs = s.HEALTH_DAMPENING_INTERVAL * 1000;
  const graceSetMs = s.DRAIN_GRACE_INTERVAL * 1000;
  // signal-sidecar's rule: a grace shorter than the dampening would end while health is
  // still held down, so it is raised to the dampening plus one second. 0 keeps it off.
  const graceMs = graceSetMs > 0 && graceSetMs < dampeningMs ? dampeningMs + 1000 : graceSetMs;
  return {
    config: {
      port: s.AGENT_PORT ?? null,
      maxconn: s.AGENT_MAXCONN ?? null,
      connectionTimeoutMs: AGENT_CONNECTION_TIMEOUT_MS,
      pollIntervalMs: s.POLLING_INTERVAL * 1000,
      dampeningMs,
      graceMs,
      graceRaisedFromMs: graceMs !== graceSetMs ? graceSetMs : null,
      statusPath: s.STATUS_PATH ?? section?.statusPath ?? join(s.SHARED_VOLUME_PATH, 'shard-status'),
      statusInitial: s.STATUS_INITIAL ?? null,
      upstreams: upstreams.map(({ from: _from, ...u }) => u),
      loadSource,
      preset: preset ? 'jitsi' : null,
      census,
    },
    problems: [],
  };
}

function stripTrailingSlashes(origin: string): string {
  return origin.replace(/\/+$/, '');
}

/** Host and path, never the query or credentials (they may carry a token): `app:8080/healthz`. */
function nameOf(u: URL): string {
  const path = u.pathname === '/' ? '' : u.pathname;
  return `${u.host}${path}`.slice(0, 64);
}

/** The same URL listed twice gets `#2`, `#3`: one series each. */
function dedupeDerivedNames(list: Array<{ name: string }>): void {
  const count = new Map<string, number>();
  for (const u of list) {
    const n = (count.get(u.name) ?? 0) + 1;
    count.set(u.name, n);
    if (n > 1) u.name = `${u.name}#${n}`;
  }
}

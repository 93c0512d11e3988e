import { z } from 'zod';
import { isHopByHop } from '../relay/forwarding';
import { httpUrl } from './config.schema';
import type { DispatchConfig, DispatchRuleConfig, HeaderPatch } from './sidecar-config';

/**
 * The dispatch rules in the YAML file at SIDECAR_CONFIG, in either of two shapes:
 *
 * - the sidecar's own `dispatch` section:
 *     dispatch: { header, default?, rules?: { <value>: { destination?, keepHost?, name?, patch?: [{set: {Name: value}} | {remove: Name}], secret? | secretFile? } } }
 * - sidecar_http_dispatcher's config.yaml, as it is:
 *     key, destination?, rewrites?: { <value>: { destination?, patch?: [{key, val}] } }
 *
 * Both become one DispatchConfig. Every problem is reported with its path in the file.
 */

/** The metrics label of requests that match no rule. */
export const DEFAULT_RULE_NAME = 'default';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What Node and undici accept in a header value: tab, printable ASCII, Latin-1 above 0x80. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** zod's message for a missing or mistyped field, in the words of the other settings' messages. */
const expecting = (what: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined ? `required (${what})` : `expected ${what}`),
});

const headerName = z.string(expecting('a header name'))
  .refine((v) => TOKEN.test(v), "expected a header name (letters, digits and !#$%&'*+-.^_`|~)");

/** A header a patch may set or remove: one the relay forwards and does not compute itself. */
const patchedName = headerName.superRefine((name, ctx) => {
  const lower = name.toLowerCase();
  if (isHopByHop(lower)) {
    ctx.addIssue({ code: 'custom', message: `${name} is a hop-by-hop header: it is never forwarded, so a patch cannot set or remove it` });
  } else if (lower === 'content-length') {
    ctx.addIssue({ code: 'custom', message: 'Content-Length is computed from the body the relay forwards; a patch cannot change it' });
  }
});

const removedName = patchedName.refine((name) => name.toLowerCase() !== 'host',
  'Host is always sent; set it, or use keepHost to send the caller\'s');

/** A header value; YAML numbers and booleans are sent as they print in YAML (true, 42). */
const headerValue = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a header value (text, a number or true/false)' })
  .transform((v) => String(v))
  .superRefine((v, ctx) => {
    if (/[\r\n]/.test(v)) ctx.addIssue({ code: 'custom', message: 'a header value cannot contain CR or LF' });
    else if (!FIELD_VALUE.test(v)) ctx.addIssue({ code: 'custom', message: 'a header value cannot contain control characters or characters above U+00FF' });
  });

const destination = z.string(expecting('an absolute http:// or https:// URL')).pipe(httpUrl).transform((v) => new URL(v));

const keepHost = z.boolean(expecting('true or false'));

/** `null` in YAML (`patch:` with nothing after it) counts as an empty list or mapping. */
const patchList = <T extends z.ZodType>(item: T) => z.array(item, expecting('a list of patches')).nullish();

const ownPatch = z.strictObject({
  set: z.record(patchedName, headerValue, expecting('a mapping of header name to value')).optional(),
  remove: removedName.optional(),
}, expecting('{set: {Name: value}} or {remove: Name}'))
  .refine((p) => (p.set === undefined) !== (p.remove === undefined), 'expected exactly one of set or remove');

const ownRule = z.strictObject({
  destination: destination.optional(),
  keepHost: keepHost.optional(),
  name: z.string(expecting('a name')).min(1, 'expected a name that is not empty').optional(),
  patch: patchList(ownPatch),
  secret: z.string(expecting('the secret as text (one per line)')).min(1, 'expected a secret that is not empty').optional(),
  secretFile: z.string(expecting('a file path')).min(1, 'expected a file path').optional(),
}, expecting('a rule: {destination?, keepHost?, name?, patch?, secret?, secretFile?}'))
  .refine((r) => r.secret === undefined || r.secretFile === undefined, 'expected at most one of secret and secretFile');

const ownSection = z.strictObject({
  header: headerName,
  default: destination.optional(),
  rules: z.record(z.string(), ownRule, expecting('a mapping of header value to rule')).nullish(),
}, expecting('a mapping: {header, default?, rules?}'));

const dispatcherPatch = z.strictObject({ key: patchedName, val: headerValue }, expecting('{key: Name, val: value}'));

const dispatcherRewrite = z.strictObject({
  patch: patchList(dispatcherPatch),
  destination: destination.optional(),
}, expecting('a rewrite: {patch?, destination?}'));

const dispatcherFile = z.strictObject({
  key: headerName,
  destination: destination.optional(),
  rewrites: z.record(z.string(), dispatcherRewrite, expecting('a mapping of header value to rewrite')).nullish(),
});

export type DispatchFormat = DispatchConfig['format'];

/**
 * Reads the `dispatch` section (format 'sidecar') or a whole sidecar_http_dispatcher file
 * (format 'sidecar_http_dispatcher'). `downstreamConfigured` says whether DOWNSTREAM_SERVICE_URL
 * can stand in for a missing default destination. Problems are "path: message".
 */
export function readDispatch(doc: unknown, format: DispatchFormat, downstreamConfigured: boolean): { config: DispatchConfig | null; problems: string[] } {
  const root = format === 'sidecar' ? ['dispatch'] : [];
  const parsed = format === 'sidecar' ? ownSection.safeParse(doc) : dispatcherFile.safeParse(doc);
  if (!parsed.success) {
    const topLevelHint = format === 'sidecar' ? '' : ' (a sidecar_http_dispatcher file holds key, destination and rewrites; give other settings as environment variables)';
    return { config: null, problems: parsed.error.issues.flatMap((issue) => describeIssue(root, issue, topLevelHint)) };
  }

  const config = format === 'sidecar'
    ? fromOwnSection(parsed.data as z.output<typeof ownSection>)
    : fromDispatcherFile(parsed.data as z.output<typeof dispatcherFile>);
  const problems = checkRules(config, root, format === 'sidecar' ? 'rules' : 'rewrites', downstreamConfigured);
  return problems.length > 0 ? { config: null, problems } : { config, problems };
}

function fromOwnSection(s: z.output<typeof ownSection>): DispatchConfig {
  const rules = Object.entries(s.rules ?? {}).map(([value, r]): DispatchRuleConfig => ({
    value,
    name: r.name ?? value,
    destination: r.destination ?? null,
    keepHost: r.keepHost ?? false,
    patches: (r.patch ?? []).flatMap((p): HeaderPatch[] =>
      p.remove !== undefined ? [{ op: 'remove', name: p.remove }] : Object.entries(p.set!).map(([name, value]) => ({ op: 'set', name, value }))),
    ...(r.secretFile !== undefined ? { secret: { file: r.secretFile } } : r.secret !== undefined ? { secret: { value: r.secret } } : {}),
  }));
  return { header: s.header, defaultDestination: s.default ?? null, rules, format: 'sidecar' };
}

function fromDispatcherFile(f: z.output<typeof dispatcherFile>): DispatchConfig {
  const rules = Object.entries(f.rewrites ?? {}).map(([value, r]): DispatchRuleConfig => ({
    value,
    name: value,
    destination: r.destination ?? null,
    keepHost: false,
    patches: (r.patch ?? []).map((p) => ({ op: 'set', name: p.key, value: p.val })),
  }));
  return { header: f.key, defaultDestination: f.destination ?? null, rules, format: 'sidecar_http_dispatcher' };
}

/** Checks across rules: names unique and not the default's, a destination for every rule. */
function checkRules(config: DispatchConfig, root: string[], rulesKey: string, downstreamConfigured: boolean): string[] {
  const problems: string[] = [];
  const own = config.format === 'sidecar';
  const byName = new Map<string, string>();
  const hasDefault = config.defaultDestination !== null || downstreamConfigured;
  for (const rule of config.rules) {
    const at = [...root, rulesKey, rule.value];
    const nameAt = pathText(own && rule.name !== rule.value ? [...at, 'name'] : at);
    if (rule.name === '') {
      problems.push(`${nameAt}: a rule for the empty value needs a name (for metrics)`);
    } else if (rule.name === DEFAULT_RULE_NAME) {
      problems.push(`${nameAt}: "default" names the requests that match no rule; ${own ? 'give this rule another name' : 'move the rules to a dispatch section, where a rule can be given another name'}`);
    } else if (byName.has(rule.name)) {
      problems.push(`${nameAt}: the name "${rule.name}" is also used by the rule for ${JSON.stringify(byName.get(rule.name))}`);
    } else {
      byName.set(rule.name, rule.value);
    }
    if (rule.destination === null && !hasDefault) {
      problems.push(`${pathText(at)}: no destination, and no default to fall back on (set ${own ? 'dispatch.default' : 'destination'} or DOWNSTREAM_SERVICE_URL)`);
    }
  }
  return problems;
}

export function describeIssue(root: string[], issue: z.core.$ZodIssue, topLevelHint: string): string[] {
  const at = [...root, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') {
    const hint = at.length === 0 ? topLevelHint : '';
    return issue.keys.map((k) => `${pathText([...at, k])}: unknown field${hint}`);
  }
  if (issue.code === 'invalid_key') return [`${pathText(at)}: ${issue.issues.map((i) => i.message).join('; ')}`];
  return [`${pathText(at)}: ${issue.message}`];
}

/** `dispatch.rules.dev.patch[1].set.X-Team`; keys that would read ambiguously are quoted: `rules["a.b"]`. */
export function pathText(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out || '(top level)';
}

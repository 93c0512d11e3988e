import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { envSchema, SECRET_SETTINGS, SETTING_NAMES } from './config.schema';
import { DispatchFormat, readDispatch } from './dispatch.schema';
import { FEATURE_SWITCHES, SidecarConfig, toSidecarConfig } from './sidecar-config';

/** Exit status for a configuration error (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

export type LoadResult = { ok: true; config: SidecarConfig } | { ok: false; problems: string[] };

type Env = Record<string, string | undefined>;

/**
 * Reads the optional YAML file at SIDECAR_CONFIG, lays the environment over it, and
 * validates the whole once. Every problem is collected; nothing is half-applied.
 */
export function loadConfig(env: Env = process.env, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): LoadResult {
  const problems: string[] = [];
  const raw: Record<string, string> = {};

  const file = env.SIDECAR_CONFIG?.trim();
  let dispatchDoc: { doc: unknown; format: DispatchFormat } | null = null;
  if (file) {
    const fromFile = readConfigFile(file, readFile, problems);
    Object.assign(raw, fromFile.settings);
    dispatchDoc = fromFile.dispatch;
  }
  for (const name of SETTING_NAMES) {
    const v = env[name];
    // An empty variable counts as unset, as Kubernetes manifests often template them so.
    if (v !== undefined && v.trim() !== '') raw[name] = v;
  }

  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '');
      problems.push(`${name}=${shown(name, raw[name])}: ${issue.message}`);
    }
  }
  let dispatch = null;
  if (dispatchDoc) {
    const read = readDispatch(dispatchDoc.doc, dispatchDoc.format, raw.DOWNSTREAM_SERVICE_URL !== undefined);
    problems.push(...read.problems.map((p) => `${file}: ${p}`));
    dispatch = read.config;
  }
  if (problems.length > 0) return { ok: false, problems };

  const config = toSidecarConfig(parsed.data!, dispatch);
  if (!config.relay && !config.healthCheck) {
    const hints = FEATURE_SWITCHES.map(([feature, names]) => `${feature}: set ${names}`).join('; ');
    return { ok: false, problems: [`no feature is configured (${hints})`] };
  }
  if (parsed.data!.RELAY_MODE === 'spool' && config.spool === null) {
    return { ok: false, problems: ['RELAY_MODE="spool": the spool needs somewhere to deliver to (set DOWNSTREAM_SERVICE_URL or dispatch rules)'] };
  }
  return { ok: true, config };
}

interface ConfigFile {
  settings: Record<string, string>;
  /** The dispatch rules as they stand in the file, checked later (their default may come from the environment). */
  dispatch: { doc: unknown; format: DispatchFormat } | null;
}

/**
 * The file holds settings by their variable names plus an optional `dispatch` section, or
 * it is sidecar_http_dispatcher's own config.yaml (told apart by its `key` or `rewrites`).
 */
function readConfigFile(path: string, readFile: (p: string) => string, problems: string[]): ConfigFile {
  const none: ConfigFile = { settings: {}, dispatch: null };
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    problems.push(`SIDECAR_CONFIG=${path}: cannot read it (${(e as Error).message})`);
    return none;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    problems.push(`SIDECAR_CONFIG=${path}: cannot read it as YAML (${(e as Error).message.split('\n')[0]})`);
    return none;
  }
  if (doc === null || doc === undefined) return none;
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`SIDECAR_CONFIG=${path}: expected a mapping of settings at the top level`);
    return none;
  }
  const entries = doc as Record<string, unknown>;
  if ('key' in entries || 'rewrites' in entries) return { settings: {}, dispatch: { doc, format: 'sidecar_http_dispatcher' } };

  const known = new Set<string>(SETTING_NAMES);
  const out: Record<string, string> = {};
  let dispatch: ConfigFile['dispatch'] = null;
  for (const [key, value] of Object.entries(entries)) {
    if (key === 'dispatch') {
      dispatch = { doc: value, format: 'sidecar' };
    } else if (!known.has(key)) {
      problems.push(`${path}: ${key}: unknown setting`);
    } else if (value === null || typeof value === 'object') {
      problems.push(`${path}: ${key}: expected a single value`);
    } else {
      out[key] = String(value);
    }
  }
  return { settings: out, dispatch };
}

function shown(name: string, value: string | undefined): string {
  if (value === undefined) return '(unset)';
  if (SECRET_SETTINGS.has(name)) return '(hidden)';
  return JSON.stringify(value);
}

/** Prints every problem in one message and returns the exit status to use. */
export function formatProblems(problems: string[]): string {
  return `pod-sidecar: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
    problems.map((p) => `  - ${p}`).join('\n');
}

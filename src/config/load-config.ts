import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { envSchema, SECRET_SETTINGS, SETTING_NAMES } from './config.schema';
import { remoteWriteProblems } from './remote-write-settings';
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
  if (file) {
    const fromFile = readConfigFile(file, readFile, problems);
    Object.assign(raw, fromFile);
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
  problems.push(...remoteWriteProblems(raw, readFile));
  if (problems.length > 0) return { ok: false, problems };

  const config = toSidecarConfig(parsed.data!);
  if (!config.relay && !config.healthCheck && !config.remoteWrite) {
    const hints = FEATURE_SWITCHES.map(([feature, names]) => `${feature}: set ${names}`).join('; ');
    return { ok: false, problems: [`no feature is configured (${hints})`] };
  }
  return { ok: true, config };
}

function readConfigFile(path: string, readFile: (p: string) => string, problems: string[]): Record<string, string> {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    problems.push(`SIDECAR_CONFIG=${path}: cannot read it (${(e as Error).message})`);
    return {};
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    problems.push(`SIDECAR_CONFIG=${path}: cannot read it as YAML (${(e as Error).message.split('\n')[0]})`);
    return {};
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`SIDECAR_CONFIG=${path}: expected a mapping of settings at the top level`);
    return {};
  }
  const known = new Set<string>(SETTING_NAMES);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!known.has(key)) {
      problems.push(`${path}: ${key}: unknown setting`);
    } else if (value === null || typeof value === 'object') {
      problems.push(`${path}: ${key}: expected a single value`);
    } else {
      out[key] = String(value);
    }
  }
  return out;
}

function shown(name: string, value: string | undefined): string {
  if (value === undefined) return '(unset)';
  if (SECRET_SETTINGS.has(name)) return '(hidden)';
  return JSON.stringify(withoutPassword(value));
}

/** A URL's password never reaches a message, whichever setting it came in. */
function withoutPassword(value: string): string {
  try {
    const u = new URL(value.trim());
    if (u.password === '') return value;
    u.password = '***';
    return u.href;
  } catch {
    return value;
  }
}

/** Prints every problem in one message and returns the exit status to use. */
export function formatProblems(problems: string[]): string {
  return `pod-sidecar: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
    problems.map((p) => `  - ${p}`).join('\n');
}

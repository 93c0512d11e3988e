import { existsSync, readFileSync } from 'node:fs';
import { AgentSection, buildAgentConfig, readAgentSection } from './agent.schema';
import { envSchema, SECRET_SETTINGS, SETTING_NAMES } from './config.schema';
import { DispatchFormat, readDispatch } from './dispatch.schema';
import { tokenProblem } from '../management/admin-access';
import { redactSecrets } from './redact';
import { redisProblems } from './redis.schema';
import { remoteWriteProblems } from './remote-write-settings';
import { applyPreset, CompatConfig } from './presets';
import { FEATURE_SWITCHES, SidecarConfig, toSidecarConfig } from './sidecar-config';
import { webhookAuthProblems } from './webhook-auth.schema';

/** Exit status for a configuration error (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

export type LoadResult = { ok: true; config: SidecarConfig } | { ok: false; problems: string[] };

export interface LoadOptions {
  /** Command-line arguments (spawner-sidecar's flags); main.ts passes process.argv's. */
  argv?: readonly string[];
  /**
   * Read when SIDECAR_CONFIG is unset and the file exists, as sidecar_http_dispatcher reads
   * config.yaml from its working directory; main.ts passes `config.yaml`.
   */
  fallbackFile?: string | null;
  exists?: (p: string) => boolean;
}

type Env = Record<string, string | undefined>;

/**
 * Reads the optional YAML file at SIDECAR_CONFIG, lays the environment over it, and
 * validates the whole once. Every problem is collected; nothing is half-applied.
 */
export function loadConfig(env: Env = process.env, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'), options: LoadOptions = {}): LoadResult {
  const problems: string[] = [];
  const raw: Record<string, string> = {};
  const exists = options.exists ?? existsSync;

  const named = env.SIDECAR_CONFIG?.trim();
  const fallback = !named && options.fallbackFile && exists(options.fallbackFile) ? options.fallbackFile : undefined;
  const file = named || fallback;
  let dispatchDoc: { doc: unknown; format: DispatchFormat } | null = null;
  // undefined: the file has no agent section; null: it has one that did not parse.
  let agentSection: AgentSection | null | undefined;
  if (file) {
    const fromFile = readConfigFile(file, readFile, problems);
    Object.assign(raw, fromFile.settings);
    dispatchDoc = fromFile.dispatch;
    if (fromFile.agent) {
      const read = readAgentSection(fromFile.agent.doc);
      problems.push(...read.problems.map((p) => `${file}: ${p}`));
      agentSection = read.section;
    }
  }
  const presetResult = applyPreset({ env, argv: options.argv ?? [], dispatcherFile: dispatchDoc?.format === 'sidecar_http_dispatcher', ownNames: SETTING_NAMES });
  if (presetResult.ok === false) problems.push(...presetResult.problems);
  const settings = presetResult.ok ? presetResult.env : env;
  const compat: CompatConfig | null = presetResult.ok ? presetResult.compat : null;
  for (const name of SETTING_NAMES) {
    const v = settings[name];
    // An empty variable counts as unset, as Kubernetes manifests often template them so.
    if (v !== undefined && v.trim() !== '') raw[name] = v;
  }
  // The replaced sidecar's defaults (its ports, its status file), where nothing sets the setting.
  for (const [name, v] of Object.entries(presetResult.ok ? presetResult.defaults : {})) {
    if (raw[name] === undefined && !(name === 'STATUS_PATH' && agentSection?.statusPath !== undefined)) raw[name] = v;
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
  problems.push(...remoteWriteProblems(raw, readFile));
  problems.push(...managementTokenProblems(raw, readFile));
  problems.push(...redisProblems(raw, readFile));
  problems.push(...webhookAuthProblems(raw, dispatch, readFile, file));
  let agent = null;
  if (parsed.success) {
    const built = buildAgentConfig(parsed.data, agentSection, compat?.jitsi ?? false);
    // Problems found across sources name their place: a file path, or a setting.
    problems.push(...built.problems.map((p) => (p.startsWith('agent.') ? `${file}: ${p}` : p)));
    agent = built.config;
  }
  // Credentials in a URL never reach a message, whichever setting or file line it came in.
  if (problems.length > 0) return { ok: false, problems: problems.map(redactSecrets) };

  const config = toSidecarConfig(parsed.data!, dispatch, agent, compat!);
  if (!config.relay && !config.healthCheck && !config.agent && !config.connections && !config.remoteWrite) {
    const hints = FEATURE_SWITCHES.map(([feature, names]) => `${feature}: set ${names}`).join('; ');
    return { ok: false, problems: [`no feature is configured (${hints})`] };
  }
  if (parsed.data!.RELAY_MODE === 'spool' && config.spool === null) {
    return { ok: false, problems: ['RELAY_MODE="spool": the spool needs somewhere to deliver to (set DOWNSTREAM_SERVICE_URL or dispatch rules)'] };
  }
  return { ok: true, config };
}

/** MANAGEMENT_TOKEN_FILE must hold a usable token at start-up; messages name the file, never its content. */
function managementTokenProblems(raw: Record<string, string>, readFile: (p: string) => string): string[] {
  const path = raw.MANAGEMENT_TOKEN_FILE?.trim();
  if (path === undefined) return [];
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    return [`MANAGEMENT_TOKEN_FILE=${JSON.stringify(path)}: cannot read it (${(e as Error).message})`];
  }
  const problem = tokenProblem(text);
  return problem === null ? [] : [`MANAGEMENT_TOKEN_FILE=${JSON.stringify(path)}: ${problem}`];
}

interface ConfigFile {
  settings: Record<string, string>;
  /** The dispatch rules as they stand in the file, checked later (their default may come from the environment). */
  dispatch: { doc: unknown; format: DispatchFormat } | null;
  /** The `agent` section as it stands in the file. */
  agent: { doc: unknown } | null;
}

/**
 * The file holds settings by their variable names plus an optional `dispatch` section, or
 * it is sidecar_http_dispatcher's own config.yaml (told apart by its `key` or `rewrites`).
 */
function readConfigFile(path: string, readFile: (p: string) => string, problems: string[]): ConfigFile {
  const none: ConfigFile = { settings: {}, dispatch: null, agent: null };
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    problems.push(`SIDECAR_CONFIG=${path}: cannot read it (${(e as Error).message})`);
    return none;
  }
  let doc: unknown;
  try {
    doc = parseYamlLazily(text);
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
  if ('key' in entries || 'rewrites' in entries) return { settings: {}, dispatch: { doc, format: 'sidecar_http_dispatcher' }, agent: null };

  const known = new Set<string>(SETTING_NAMES);
  const out: Record<string, string> = {};
  let dispatch: ConfigFile['dispatch'] = null;
  let agent: ConfigFile['agent'] = null;
  for (const [key, value] of Object.entries(entries)) {
    if (key === 'dispatch') {
      dispatch = { doc: value, format: 'sidecar' };
    } else if (key === 'agent') {
      agent = { doc: value };
    } else if (!known.has(key)) {
      problems.push(`${path}: ${key}: unknown setting`);
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
      out[key] = String(value);
    } else {
      problems.push(`${path}: ${key}: expected a single value`);
    }
  }
  return { settings: out, dispatch, agent };
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

/** The YAML parser is loaded only when there is a file to read: most sidecars run on environment alone. */
function parseYamlLazily(text: string): unknown {
  return (require('yaml') as typeof import('yaml')).parse(text);
}

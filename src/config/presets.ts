import { parseArgs } from 'node:util';

/**
 * Drop-in presets: the settings of the sidecars this one replaces, read under their own
 * names (environment variables, command-line flags, file paths) and turned into this
 * sidecar's settings before they are validated, plus what each of them served beyond that
 * (ports it opened, endpoints, series). Which preset is meant:
 *
 * 1. `SIDECAR_PRESET`, when set;
 * 2. else a name only one of them has (HTTP_PORT, TCP_PORT, PARTIPANT_MAX, METRICS:
 *    signal-sidecar; TIMEOUT, NAMESPACE: the metrics pusher; any command-line flag:
 *    spawner-sidecar);
 * 3. else a configuration made only of one of them's names, with at least one that switches
 *    its feature on (JICOFO_ORIG, …: signal-sidecar; PROMETHEUS_REMOTE_WRITE_URL: the
 *    metrics pusher; a sidecar_http_dispatcher file and nothing else: the dispatcher);
 * 4. else none: the sidecar's own settings and ports.
 *
 * Names of two presets at once, or a seed's name beside this sidecar's name for the same
 * thing, are refused (exit 78) with a message naming both.
 */
export const PRESETS = ['smee-sidecar', 'signal-sidecar', 'spawner-sidecar', 'metrics-pusher', 'http-dispatcher'] as const;
export type Preset = (typeof PRESETS)[number];

type Env = Record<string, string | undefined>;

/** What a preset adds to the sidecar beyond its own settings (SidecarConfig.compat). */
export interface CompatConfig {
  preset: Preset | null;
  /** How the preset was chosen, for the ready line: `SIDECAR_PRESET`, or the names that told. */
  chosenBy: string | null;
  /** signal-sidecar's METRICS=false: /metrics answers 404. */
  metricsServed: boolean;
  /** spawner-sidecar: `GET /` on the management (serve) port answers its connection blob. */
  spawnerRoot: boolean;
  /** signal-sidecar and the metrics pusher: `GET /health` (200 while the process serves). */
  healthRoute: boolean;
  /** The metrics pusher: `GET /ready`. */
  readyRoute: boolean;
  /** The metrics pusher: its heartbeat, uptime and memory series under its names. */
  pusherSeries: boolean;
  /** signal-sidecar: the Jitsi checks even when none of its settings is set. */
  jitsi: boolean;
  /** http-dispatcher: the management port is not opened unless MANAGEMENT_PORT is set. */
  managementPortOff: boolean;
}

export const NO_COMPAT: CompatConfig = {
  preset: null, chosenBy: null, metricsServed: true, spawnerRoot: false, healthRoute: false, readyRoute: false, pusherSeries: false, jitsi: false, managementPortOff: false,
};

/** The seeds' own names that this sidecar does not have: they tell which seed is meant. */
const OWN_NAMES: Partial<Record<Preset, readonly string[]>> = {
  'signal-sidecar': ['HTTP_PORT', 'TCP_PORT', 'PARTIPANT_MAX', 'METRICS'],
  'metrics-pusher': ['TIMEOUT', 'NAMESPACE'],
};

/** Every name each seed documents (its own and those this sidecar shares with it). */
const SEED_NAMES: Partial<Record<Preset, readonly string[]>> = {
  'signal-sidecar': ['HTTP_PORT', 'TCP_PORT', 'JICOFO_ORIG', 'PROSODY_ORIG', 'STATUS_PATH', 'POLLING_INTERVAL', 'PARTIPANT_MAX', 'PARTICIPANT_MAX',
    'WEIGHT_PARTICIPANTS', 'CENSUS_POLL', 'CENSUS_HOST', 'HEALTH_DAMPENING_INTERVAL', 'DRAIN_GRACE_INTERVAL', 'METRICS', 'LOG_LEVEL'],
  'metrics-pusher': ['PROMETHEUS_REMOTE_WRITE_URL', 'PUSH_INTERVAL', 'TIMEOUT', 'LOG_LEVEL', 'NAMESPACE'],
  'http-dispatcher': ['SIDECAR_CONFIG'],
};

/** The names that switch a seed's feature on, for recognising a configuration made only of its names. */
const SWITCHES: Partial<Record<Preset, readonly string[]>> = {
  'signal-sidecar': ['JICOFO_ORIG', 'PROSODY_ORIG', 'PARTICIPANT_MAX', 'WEIGHT_PARTICIPANTS', 'CENSUS_POLL', 'CENSUS_HOST'],
  'metrics-pusher': ['PROMETHEUS_REMOTE_WRITE_URL'],
};

/** Settings that neither switch a feature on nor open a port: they do not stop a configuration from being a seed's. */
const NEUTRAL = new Set(['LOG_LEVEL', 'LOG_FORMAT', 'LISTEN_HOST', 'SHARED_VOLUME_PATH', 'SHUTDOWN_TIMEOUT_SECONDS', 'MANAGEMENT_TOKEN_FILE', 'SIDECAR_PRESET']);

/** A Kubernetes service link (`tcp://10.0.0.1:6000`, for a Service named "http" or "tcp"): not the user's setting. */
const SERVICE_LINK = /^(tcp|udp|sctp):\/\//i;

/** spawner-sidecar's command-line flags. */
const FLAGS = {
  'monitor-port': { type: 'string' },
  'refresh-rate-seconds': { type: 'string' },
  'serve-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SPAWNER_USAGE = `USAGE:
    pod-sidecar [OPTIONS]          (spawner-sidecar's flags; every other setting is an environment variable)

OPTIONS:
    -h, --help                                   Print this help
        --monitor-port <MONITOR_PORT>            The TCP port to monitor connection activity on [default: 8080]
        --refresh-rate-seconds <SECONDS>         The rate (in seconds) at which to check for activity [default: 10]
        --serve-port <SERVE_PORT>                The port of the HTTP server that serves the connection state at GET / [default: 7070]
`;

/** `-h`/`--help` among the arguments: main.ts prints SPAWNER_USAGE and exits 0 before reading any setting. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('-h') || argv.includes('--help');
}

export type PresetResult =
  /** `env`: the environment with the seed's names turned into this sidecar's; `defaults`: the seed's defaults, for settings neither the environment nor the file sets. */
  | { ok: true; env: Env; defaults: Record<string, string>; compat: CompatConfig }
  | { ok: false; problems: string[] };

export interface PresetInput {
  env: Env;
  argv: readonly string[];
  /** Whether the configuration file (SIDECAR_CONFIG, or config.yaml in the working directory) is sidecar_http_dispatcher's. */
  dispatcherFile: boolean;
  /** This sidecar's own setting names (the schema's), to tell settings from the rest of the environment. */
  ownNames: readonly string[];
}

const isSet = (env: Env, name: string) => env[name] !== undefined && env[name].trim() !== '';

/** Turns the seed's names into this sidecar's; the result is validated by the usual schema. */
export function applyPreset({ env, argv, dispatcherFile, ownNames }: PresetInput): PresetResult {
  const problems: string[] = [];

  let flags: { values: Record<string, string | boolean | undefined>; names: string[] } = { values: {}, names: [] };
  try {
    const parsed = parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: false });
    flags = { values: parsed.values, names: Object.keys(parsed.values).filter((k) => k !== 'help') };
  } catch (e) {
    problems.push(`command line: ${(e as Error).message.split('\n')[0]} (the only flags are spawner-sidecar's: --monitor-port, --refresh-rate-seconds, --serve-port, --help)`);
  }

  // Generic names that hold a service link are Kubernetes', not a seed's.
  const present = (name: string) => isSet(env, name) && !(OWN_NAMES['signal-sidecar']!.includes(name) && SERVICE_LINK.test(env[name]!.trim()));

  let preset: Preset | null = null;
  let chosenBy: string | null = null;
  const explicit = env.SIDECAR_PRESET?.trim();
  if (explicit) {
    if (!(PRESETS as readonly string[]).includes(explicit.toLowerCase())) {
      problems.push(`SIDECAR_PRESET=${JSON.stringify(explicit)}: expected one of ${PRESETS.join(', ')}`);
    } else {
      preset = explicit.toLowerCase() as Preset;
      chosenBy = 'SIDECAR_PRESET';
    }
  }

  // Names only one seed has, and the seeds they point at.
  const told = new Map<Preset, string[]>();
  for (const [p, names] of Object.entries(OWN_NAMES) as Array<[Preset, string[]]>) {
    const set = names.filter(present);
    if (set.length > 0) told.set(p, set);
  }
  if (flags.names.length > 0) told.set('spawner-sidecar', flags.names.map((n) => `--${n}`));

  if (preset !== null) {
    for (const [p, names] of told) {
      if (p !== preset) problems.push(`${names.join(', ')}: ${p}'s setting${names.length > 1 ? 's' : ''}, but SIDECAR_PRESET=${preset}; remove ${names.length > 1 ? 'them' : 'it'} or change SIDECAR_PRESET`);
    }
  } else if (told.size > 1) {
    const list = [...told].map(([p, names]) => `${p} (${names.join(', ')})`).join(' and ');
    problems.push(`settings of two sidecars at once: ${list}; keep one sidecar's names (or set SIDECAR_PRESET and remove the other's)`);
  } else if (told.size === 1) {
    const [[p, names]] = [...told];
    preset = p;
    chosenBy = names.join(', ');
  } else {
    const known = new Set<string>([...ownNames, 'SIDECAR_CONFIG', ...Object.values(OWN_NAMES).flat()]);
    const used = Object.keys(env).filter((n) => isSet(env, n) && !NEUTRAL.has(n) && known.has(n));
    for (const p of ['signal-sidecar', 'metrics-pusher'] as const) {
      if (used.length > 0 && used.every((n) => SEED_NAMES[p]!.includes(n)) && used.some((n) => SWITCHES[p]!.includes(n))) {
        preset = p;
        chosenBy = used.join(', ');
      }
    }
    if (preset === null && dispatcherFile && used.every((n) => n === 'SIDECAR_CONFIG')) {
      preset = 'http-dispatcher';
      chosenBy = 'a sidecar_http_dispatcher config.yaml';
    }
  }
  if (problems.length > 0) return { ok: false, problems };

  const out: Env = { ...env };
  const defaults: Record<string, string> = {};
  const compat: CompatConfig = { ...NO_COMPAT, preset, chosenBy };
  /** `seedName` becomes `ownName`; both set is refused. */
  const rename = (seedName: string, ownName: string, value: string | undefined, fallback?: string) => {
    if (value !== undefined && isSet(env, ownName)) {
      problems.push(`${seedName} and ${ownName} are both set: they are the same setting (${preset}'s name and this sidecar's); keep one`);
      return;
    }
    if (value !== undefined) out[ownName] = value;
    else if (fallback !== undefined) defaults[ownName] = fallback;
  };
  const value = (name: string) => (present(name) ? env[name]!.trim() : undefined);

  switch (preset) {
    case 'signal-sidecar': {
      rename('HTTP_PORT', 'MANAGEMENT_PORT', value('HTTP_PORT'), '6000');
      rename('TCP_PORT', 'AGENT_PORT', value('TCP_PORT'), '6060');
      defaults.STATUS_PATH = '/etc/jitsi/shard-status';
      const misspelt = value('PARTIPANT_MAX');
      const right = value('PARTICIPANT_MAX');
      if (misspelt !== undefined && right !== undefined && misspelt !== right) {
        problems.push(`PARTIPANT_MAX=${JSON.stringify(misspelt)} and PARTICIPANT_MAX=${JSON.stringify(right)} differ: they are one setting (signal-sidecar's README spells it both ways); keep one`);
      } else if (misspelt !== undefined) {
        out.PARTICIPANT_MAX = misspelt;
      }
      delete out.PARTIPANT_MAX;
      const metrics = value('METRICS');
      if (metrics !== undefined && !BOOLEAN.test(metrics)) problems.push(`METRICS=${JSON.stringify(metrics)}: expected true or false`);
      compat.metricsServed = metrics === undefined || TRUE.test(metrics);
      compat.healthRoute = true;
      compat.jitsi = true;
      break;
    }
    case 'spawner-sidecar': {
      const flag = (name: string) => flags.values[name] as string | undefined;
      rename('--monitor-port', 'MONITOR_PORT', flag('monitor-port'), '8080');
      rename('--refresh-rate-seconds', 'REFRESH_RATE_SECONDS', flag('refresh-rate-seconds'), '10');
      rename('--serve-port', 'MANAGEMENT_PORT', flag('serve-port'), '7070');
      compat.spawnerRoot = true;
      break;
    }
    case 'metrics-pusher': {
      rename('TIMEOUT', 'REMOTE_WRITE_TIMEOUT', value('TIMEOUT'));
      // The pusher's NAMESPACE (its default, knative-lambda, is not applied: a label nobody set would change every series).
      const ns = value('NAMESPACE');
      const labels = env.REMOTE_WRITE_LABELS?.trim();
      if (ns !== undefined && labels && /(^|,)\s*namespace\s*=/.test(labels)) {
        problems.push('NAMESPACE and REMOTE_WRITE_LABELS both set the namespace label; keep one');
      } else if (ns !== undefined) {
        out.REMOTE_WRITE_LABELS = labels ? `${labels},namespace=${ns}` : `namespace=${ns}`;
      }
      if (!isSet(env, 'PROMETHEUS_REMOTE_WRITE_URL')) problems.push('PROMETHEUS_REMOTE_WRITE_URL=(unset): required by the metrics pusher (the receiver to push to)');
      compat.healthRoute = true;
      compat.readyRoute = true;
      compat.pusherSeries = true;
      break;
    }
    case 'http-dispatcher': {
      defaults.RELAY_PORT = '5000';
      compat.managementPortOff = !isSet(env, 'MANAGEMENT_PORT');
      break;
    }
    default:
      break;
  }
  for (const names of Object.values(OWN_NAMES)) for (const n of names) if (n !== 'PARTIPANT_MAX') delete out[n];
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, env: out, defaults, compat };
}

const BOOLEAN = /^(true|false|1|0|yes|no)$/i;
const TRUE = /^(true|1|yes)$/i;

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { EnvSettings } from './config.schema';
import { CoordinationConfig, toCoordinationConfig } from './redis.schema';
import { defaultBufferedBytes } from '../relay/body-budget';
import { type CompatConfig, NO_COMPAT } from './presets';
import { type SecretSourceConfig, toWebhookAuthConfig, type WebhookAuthConfig } from './webhook-auth.schema';

/** The validated configuration, one slice per feature; a slice that is null is switched off. */
export interface SidecarConfig {
  server: ServerConfig;
  management: ManagementConfig;
  relay: RelayConfig | null;
  dispatch: DispatchConfig | null;
  /** Store-and-forward (RELAY_MODE=spool); null in proxy mode or when the relay has nowhere to send to. */
  spool: SpoolConfig | null;
  healthCheck: HealthCheckConfig | null;
  agent: AgentConfig | null;
  connections: ConnectionsConfig | null;
  sharedVolume: SharedVolumeConfig;
  log: LogConfig;
  debug: { enabled: boolean };
  remoteWrite: RemoteWriteConfig | null;
  /** What the drop-in preset in force adds (src/config/presets.ts). */
  compat: CompatConfig;
  /** Replicas agree through Redis on who delivers each event (REDIS_URL); null: each delivers what it receives. */
  coordination: CoordinationConfig | null;
  /** Webhook authenticity on the relay port; null: events are relayed unverified. */
  webhookAuth: WebhookAuthConfig | null;
}

export interface ServerConfig {
  relayPort: number;
  /** null: the management port is not opened (the http-dispatcher preset without MANAGEMENT_PORT). */
  managementPort: number | null;
  listenHost: string;
  shutdownTimeoutMs: number;
}

/** Access to the management port's writes and /debug/* (src/management/admin-access.ts). */
export interface ManagementConfig {
  /** The bearer token's file (re-read when it changes); null: those endpoints answer loopback callers only. */
  tokenFile: string | null;
}

export interface RelayConfig {
  /** Where requests go; null when only health-check events are expected on the relay port. */
  downstreamUrl: URL | null;
  timeoutMs: number;
  maxBodyBytes: number;
  maxConnections: number;
  /** Request body bytes held in memory at once, across callers (RELAY_MAX_BUFFERED_BYTES or its default). */
  maxBufferedBytes: number;
  mode: 'proxy' | 'spool';
  spoolPath: string;
}

export interface SpoolConfig {
  /** The directory that holds the segment files and the dead letters. */
  path: string;
  /** Bytes the spool may take on disk (segment files and dead letters); past it new events get 507. */
  maxBytes: number;
  /** How long an event is retried, from when it was queued, before it becomes a dead letter. */
  maxAgeMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** Deliveries in flight per destination; 1 keeps strict arrival order. */
  concurrency: number;
  /** The request header that names a delivery (for duplicates), as configured; null: no duplicate detection. */
  dedupHeader: string | null;
  dedupWindowMs: number;
  /** A delivery must see response headers within this (RELAY_TIMEOUT_SECONDS). */
  deliveryTimeoutMs: number;
}

/** Header-keyed routing of relayed requests (the `dispatch` section, or a sidecar_http_dispatcher file). */
export interface DispatchConfig {
  /** The request header whose value picks a rule, as written in the file. */
  header: string;
  /** For requests that match no rule, and rules without their own: the file's default, else DOWNSTREAM_SERVICE_URL. */
  defaultDestination: URL | null;
  rules: DispatchRuleConfig[];
  /** Which shape the file had: the sidecar's own section or the dispatcher's config.yaml. */
  format: 'sidecar' | 'sidecar_http_dispatcher';
}

export interface DispatchRuleConfig {
  /** The header value this rule is for (exact match). */
  value: string;
  /** Label for metrics and logs; the value unless the file names it. */
  name: string;
  /** null: the default destination. */
  destination: URL | null;
  /** Send the caller's Host instead of the destination's. */
  keepHost: boolean;
  /** Applied in order, after hop-by-hop headers are dropped. */
  patches: HeaderPatch[];
  /** This rule's events are verified with these secrets instead of WEBHOOK_SECRET(_FILE). */
  secret?: SecretSourceConfig;
}

/** Set replaces every occurrence of the header (any case) with one; remove drops them all. */
export type HeaderPatch = { op: 'set'; name: string; value: string } | { op: 'remove'; name: string };

export interface HealthCheckConfig {
  channelUrl: string;
  timeoutMs: number;
  intervalMs: number;
  insecureSkipVerify: boolean;
}

/** Upstream health aggregation, the status file, flap mitigation and the HAProxy agent. */
export interface AgentConfig {
  /** TCP port of the HAProxy agent; null: only the HTTP report and metrics. */
  port: number | null;
  /** Appended to the agent line as ` maxconn:N` when set. */
  maxconn: number | null;
  /** How long an agent connection may stay open after the reply (a peer that never closes). */
  connectionTimeoutMs: number;
  pollIntervalMs: number;
  /** After the last unhealthy round, how long health stays reported down (0: off). */
  dampeningMs: number;
  /** How long soft-down failures are reported as drain instead of down (0: off); already forced above dampeningMs. */
  graceMs: number;
  /** DRAIN_GRACE_INTERVAL as set, when it had to be raised above the dampening interval (for a warning). */
  graceRaisedFromMs: number | null;
  statusPath: string;
  /** Written to the status file at start-up when there is none. */
  statusInitial: AdminStatus | null;
  upstreams: UpstreamCheckConfig[];
  loadSource: LoadSourceConfig | null;
  /** Set when the signal-sidecar settings (JICOFO_ORIG, PROSODY_ORIG, ...) made the checks. */
  preset: 'jitsi' | null;
  /** The Jitsi preset's census (CENSUS_POLL): prosody's mod_muc_census, polled each round; null when off. */
  census: CensusConfig | null;
}

export type AdminStatus = 'ready' | 'drain' | 'maint';

export interface UpstreamCheckConfig {
  /** Metrics label and report key: configured, or host and path of the URL. */
  name: string;
  url: URL;
  /** Inclusive status ranges that count as healthy. */
  expectStatus: Array<[min: number, max: number]>;
  timeoutMs: number;
  /** Further attempts within one round after a connection failure or timeout (never after an answer). */
  retries: number;
  /** Which failures only drain (within DRAIN_GRACE_INTERVAL) rather than take the node down. */
  softDown: { statuses: number[]; onTimeout: boolean };
  /** Keep up to this many bytes of the answer's body (for /signal/report); unset: the body is not read. */
  keepBodyBytes?: number;
}

export interface CensusConfig {
  /** `<PROSODY_ORIG>/room-census`. */
  url: URL;
  /** CENSUS_HOST: the conference host, sent as the request's Host (prosody serves the module on that virtual host). */
  host: string;
  timeoutMs: number;
}

export interface LoadSourceConfig {
  url: URL;
  /** The field as written (`stats.participants`) and split into its steps. */
  field: string;
  path: string[];
  /** Load at which the free share is 0; above it the node drains. */
  max: number;
  /** false: the reading only drains above max, the weight stays 100% (WEIGHT_PARTICIPANTS=false). */
  weighted: boolean;
  timeoutMs: number;
  /** More numbers read from the same answer, by name (the Jitsi preset: `conferences`); they do not weigh. */
  extraFields?: Record<string, string[]>;
}

export interface ConnectionsConfig {
  /** Local TCP ports whose sockets are counted. */
  ports: number[];
  refreshMs: number;
  /** wait-for-idle.sh's default: how long no ESTABLISHED connection must have been seen. */
  idleSettleSeconds: number;
  /** The key=value state file that wait-for-idle.sh reads. */
  stateFilePath: string;
  /** Directory holding the kernel's `tcp` and `tcp6` tables. */
  procNetPath: string;
  /** Where wait-for-idle.sh is written (the shared volume). */
  scriptDir: string;
}

export interface SharedVolumeConfig {
  path: string;
  healthFilePath: string;
}

export interface LogConfig {
  level: 'debug' | 'info' | 'warn' | 'error';
  format: 'json' | 'pretty';
}

export interface RemoteWriteConfig {
  url: string;
  /** The `instance` label of the sidecar's own series: the host name, which is the pod's name in Kubernetes. */
  instance: string;
  intervalMs: number;
  /** Bounds one push request, and the final push at shutdown as a whole. */
  timeoutMs: number;
  /** Pushes (snapshots) waiting for delivery at most; the oldest is dropped beyond. */
  queueSize: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Extra labels of every pushed series, such as namespace and pod from the downward API. */
  labels: Array<[name: string, value: string]>;
  headers: Array<[name: string, value: string]>;
  auth: RemoteWriteAuth;
  tls: { caFile: string | null; certFile: string | null; keyFile: string | null; insecureSkipVerify: boolean };
  scrape: { targets: ScrapeTarget[]; timeoutMs: number };
}

export type RemoteWriteAuth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: { value: string } | { file: string } }
  | { kind: 'bearer'; tokenFile: string };

export interface ScrapeTarget {
  url: string;
  /**
   * The `instance` label of its series: host:port, with the pod's host name for a loopback
   * host (every replica scrapes its own 127.0.0.1), and with the path when two targets
   * share a host:port.
   */
  instance: string;
}

/** The settings that switch each feature on, for the message shown when none is set. */
export const FEATURE_SWITCHES: ReadonlyArray<[feature: string, settings: string]> = [
  ['relay', 'DOWNSTREAM_SERVICE_URL (or dispatch rules)'],
  ['dispatch', 'SIDECAR_CONFIG to a file with a dispatch section'],
  ['health check', 'SMEE_CHANNEL_URL'],
  ['agent', 'AGENT_PORT or UPSTREAM_HEALTH_URLS (or JICOFO_ORIG/PROSODY_ORIG, or an agent section in SIDECAR_CONFIG)'],
  ['connections', 'MONITOR_PORT'],
  ['remote write', 'PROMETHEUS_REMOTE_WRITE_URL'],
  ['spool', 'RELAY_MODE=spool beside a relay destination'],
];

/**
 * `dispatch` is the file's section as read; DOWNSTREAM_SERVICE_URL fills in its default
 * destination when it has none. `agent` is built from settings and file by buildAgentConfig.
 */
export function toSidecarConfig(s: EnvSettings, dispatch: DispatchConfig | null = null, agent: AgentConfig | null = null, compat: CompatConfig = NO_COMPAT): SidecarConfig {
  const downstreamOn = s.DOWNSTREAM_SERVICE_URL !== undefined;
  const relayOn = downstreamOn || dispatch !== null;
  const healthOn = s.SMEE_CHANNEL_URL !== undefined;
  return {
    server: {
      relayPort: s.RELAY_PORT,
      managementPort: compat.managementPortOff ? null : s.MANAGEMENT_PORT,
      listenHost: s.LISTEN_HOST,
      shutdownTimeoutMs: s.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    },
    management: { tokenFile: s.MANAGEMENT_TOKEN_FILE ?? null },
    // The relay port also listens when only the health check is on (the smee server
    // monitoring pod): its own events must come back somewhere.
    relay: relayOn || healthOn
      ? {
          downstreamUrl: downstreamOn ? new URL(s.DOWNSTREAM_SERVICE_URL!) : null,
          timeoutMs: s.RELAY_TIMEOUT_SECONDS * 1000,
          maxBodyBytes: s.RELAY_MAX_BODY_BYTES,
          maxConnections: s.RELAY_MAX_CONNECTIONS,
          maxBufferedBytes: s.RELAY_MAX_BUFFERED_BYTES ?? defaultBufferedBytes(s.RELAY_MAX_BODY_BYTES),
          mode: s.RELAY_MODE,
          spoolPath: s.SPOOL_PATH ?? join(s.SHARED_VOLUME_PATH, 'spool'),
        }
      : null,
    dispatch: dispatch && {
      ...dispatch,
      defaultDestination: dispatch.defaultDestination ?? (downstreamOn ? new URL(s.DOWNSTREAM_SERVICE_URL!) : null),
    },
    spool: relayOn && s.RELAY_MODE === 'spool'
      ? {
          path: s.SPOOL_PATH ?? join(s.SHARED_VOLUME_PATH, 'spool'),
          maxBytes: s.SPOOL_MAX_BYTES,
          maxAgeMs: s.SPOOL_MAX_AGE,
          retryInitialMs: s.SPOOL_RETRY_INITIAL,
          retryMaxMs: s.SPOOL_RETRY_MAX,
          concurrency: s.SPOOL_CONCURRENCY,
          dedupHeader: s.SPOOL_DEDUP_HEADER,
          dedupWindowMs: s.SPOOL_DEDUP_WINDOW,
          deliveryTimeoutMs: s.RELAY_TIMEOUT_SECONDS * 1000,
        }
      : null,
    healthCheck: healthOn
      ? {
          channelUrl: s.SMEE_CHANNEL_URL!,
          timeoutMs: s.HEALTH_CHECK_TIMEOUT_SECONDS * 1000,
          intervalMs: s.HEALTH_CHECK_INTERVAL_SECONDS * 1000,
          insecureSkipVerify: s.INSECURE_SKIP_VERIFY,
        }
      : null,
    agent,
    connections: s.MONITOR_PORT
      ? {
          ports: s.MONITOR_PORT,
          refreshMs: s.REFRESH_RATE_SECONDS * 1000,
          idleSettleSeconds: s.IDLE_SETTLE_SECONDS,
          stateFilePath: s.CONNECTIONS_FILE_PATH ?? join(s.SHARED_VOLUME_PATH, 'connections.txt'),
          procNetPath: s.PROC_NET_PATH,
          scriptDir: s.SHARED_VOLUME_PATH,
        }
      : null,
    sharedVolume: {
      path: s.SHARED_VOLUME_PATH,
      healthFilePath: s.HEALTH_FILE_PATH ?? join(s.SHARED_VOLUME_PATH, 'health-status.txt'),
    },
    log: { level: s.LOG_LEVEL, format: s.LOG_FORMAT },
    debug: { enabled: s.ENABLE_PPROF },
    remoteWrite: s.PROMETHEUS_REMOTE_WRITE_URL !== undefined ? toRemoteWriteConfig(s, s.PROMETHEUS_REMOTE_WRITE_URL, hostname()) : null,
    compat,
    coordination: relayOn ? toCoordinationConfig(s, `${hostname()}-${randomBytes(3).toString('hex')}`) : null,
    webhookAuth: relayOn || healthOn ? toWebhookAuthConfig(s, dispatch) : null,
  };
}

function toRemoteWriteConfig(s: EnvSettings, url: string, host: string): RemoteWriteConfig {
  let auth: RemoteWriteAuth = { kind: 'none' };
  if (s.REMOTE_WRITE_USERNAME !== undefined) {
    const password = s.REMOTE_WRITE_PASSWORD_FILE !== undefined ? { file: s.REMOTE_WRITE_PASSWORD_FILE } : { value: s.REMOTE_WRITE_PASSWORD ?? '' };
    auth = { kind: 'basic', username: s.REMOTE_WRITE_USERNAME, password };
  } else if (s.REMOTE_WRITE_BEARER_TOKEN_FILE !== undefined) {
    auth = { kind: 'bearer', tokenFile: s.REMOTE_WRITE_BEARER_TOKEN_FILE };
  }
  return {
    url,
    instance: host,
    intervalMs: s.PUSH_INTERVAL,
    timeoutMs: s.REMOTE_WRITE_TIMEOUT,
    queueSize: s.REMOTE_WRITE_QUEUE_SIZE,
    minBackoffMs: s.REMOTE_WRITE_MIN_BACKOFF,
    maxBackoffMs: s.REMOTE_WRITE_MAX_BACKOFF,
    labels: s.REMOTE_WRITE_LABELS ?? [],
    headers: s.REMOTE_WRITE_HEADERS ?? [],
    auth,
    tls: {
      caFile: s.REMOTE_WRITE_CA_FILE ?? null,
      certFile: s.REMOTE_WRITE_CERT_FILE ?? null,
      keyFile: s.REMOTE_WRITE_KEY_FILE ?? null,
      insecureSkipVerify: s.REMOTE_WRITE_INSECURE_SKIP_VERIFY,
    },
    scrape: { targets: scrapeTargets(s.SCRAPE_TARGETS ?? [], host), timeoutMs: s.SCRAPE_TIMEOUT },
  };
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

export function scrapeTargets(urls: string[], host: string): ScrapeTarget[] {
  // URL.hostname keeps an IPv6 address in brackets, as host:port needs it.
  const hostPort = (u: URL) => `${LOOPBACK.test(u.hostname) ? host : u.hostname}:${u.port || DEFAULT_PORTS[u.protocol]}`;
  const parsed = urls.map((url) => new URL(url));
  const counts = new Map<string, number>();
  for (const u of parsed) counts.set(hostPort(u), (counts.get(hostPort(u)) ?? 0) + 1);
  return parsed.map((u, i) => ({
    url: urls[i],
    instance: counts.get(hostPort(u))! > 1 ? `${hostPort(u)}${u.pathname}` : hostPort(u),
  }));
}

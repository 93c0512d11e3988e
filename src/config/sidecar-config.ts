import { join } from 'node:path';
import type { EnvSettings } from './config.schema';

/** The validated configuration, one slice per feature; a slice that is null is switched off. */
export interface SidecarConfig {
  server: ServerConfig;
  relay: RelayConfig | null;
  dispatch: DispatchConfig | null;
  /** Store-and-forward (RELAY_MODE=spool); null in proxy mode or when the relay has nowhere to send to. */
  spool: SpoolConfig | null;
  healthCheck: HealthCheckConfig | null;
  sharedVolume: SharedVolumeConfig;
  log: LogConfig;
  debug: { enabled: boolean };
}

export interface ServerConfig {
  relayPort: number;
  managementPort: number;
  listenHost: string;
  shutdownTimeoutMs: number;
}

export interface RelayConfig {
  /** Where requests go; null when only health-check events are expected on the relay port. */
  downstreamUrl: URL | null;
  timeoutMs: number;
  maxBodyBytes: number;
  maxConnections: number;
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
}

/** Set replaces every occurrence of the header (any case) with one; remove drops them all. */
export type HeaderPatch = { op: 'set'; name: string; value: string } | { op: 'remove'; name: string };

export interface HealthCheckConfig {
  channelUrl: string;
  timeoutMs: number;
  intervalMs: number;
  insecureSkipVerify: boolean;
}

export interface SharedVolumeConfig {
  path: string;
  healthFilePath: string;
}

export interface LogConfig {
  level: 'debug' | 'info' | 'warn' | 'error';
  format: 'json' | 'pretty';
}

/** The settings that switch each feature on, for the message shown when none is set. */
export const FEATURE_SWITCHES: ReadonlyArray<[feature: string, settings: string]> = [
  ['relay', 'DOWNSTREAM_SERVICE_URL (or dispatch rules)'],
  ['dispatch', 'SIDECAR_CONFIG to a file with a dispatch section'],
  ['health check', 'SMEE_CHANNEL_URL'],
  ['spool', 'RELAY_MODE=spool beside a relay destination'],
];

/** `dispatch` is the file's section as read; DOWNSTREAM_SERVICE_URL fills in its default destination when it has none. */
export function toSidecarConfig(s: EnvSettings, dispatch: DispatchConfig | null = null): SidecarConfig {
  const downstreamOn = s.DOWNSTREAM_SERVICE_URL !== undefined;
  const relayOn = downstreamOn || dispatch !== null;
  const healthOn = s.SMEE_CHANNEL_URL !== undefined;
  return {
    server: {
      relayPort: s.RELAY_PORT,
      managementPort: s.MANAGEMENT_PORT,
      listenHost: s.LISTEN_HOST,
      shutdownTimeoutMs: s.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    },
    // The relay port also listens when only the health check is on (the smee server
    // monitoring pod): its own events must come back somewhere.
    relay: relayOn || healthOn
      ? {
          downstreamUrl: downstreamOn ? new URL(s.DOWNSTREAM_SERVICE_URL!) : null,
          timeoutMs: s.RELAY_TIMEOUT_SECONDS * 1000,
          maxBodyBytes: s.RELAY_MAX_BODY_BYTES,
          maxConnections: s.RELAY_MAX_CONNECTIONS,
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
    sharedVolume: {
      path: s.SHARED_VOLUME_PATH,
      healthFilePath: s.HEALTH_FILE_PATH ?? join(s.SHARED_VOLUME_PATH, 'health-status.txt'),
    },
    log: { level: s.LOG_LEVEL, format: s.LOG_FORMAT },
    debug: { enabled: s.ENABLE_PPROF },
  };
}

import type { DynamicModule, Type } from '@nestjs/common';
import type { HealthIndicatorResult } from '@nestjs/terminus';

/** The keys of /status that features fill in; a feature that is off leaves its key null. */
export const STATUS_PARTS = [
  'relay',
  'dispatch',
  'spool',
  'coordination',
  'webhookAuth',
  'healthCheck',
  'connections',
  'remoteWrite',
  'agent',
] as const;
export type StatusPartKey = (typeof STATUS_PARTS)[number];

/**
 * What one feature contributes to the management port: its part of /status and its
 * terminus checks. Each feature module provides and exports its own; ManagementModule
 * collects those of the features the configuration switched on.
 */
export interface FeaturePart {
  readonly key: StatusPartKey;
  /** What /status `features` shows for it; undefined: the feature is not listed there (the spool shows as the relay's mode). */
  readonly feature?: unknown;
  /** Its part of the /status body. */
  status(): unknown;
  /** Its checks in /healthz: the process stays alive only while they are up. */
  liveness?(): HealthIndicatorResult[];
  /** Its checks in /readyz: traffic is sent only while they are up. */
  readiness?(): HealthIndicatorResult[];
}

/** The parts of the switched-on features, in the order the composition root lists them. */
export const FEATURE_PARTS = Symbol('feature parts');

/** A switched-on feature as the management module sees it: the module that exports its part, and the part's class. */
export interface FeatureModule {
  module: DynamicModule;
  part: Type<FeaturePart>;
}

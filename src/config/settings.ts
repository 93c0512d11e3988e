import { Inject, type Provider } from '@nestjs/common';
import type { SidecarConfig } from './sidecar-config';

/** A slice of the validated configuration (sidecar-config.ts), one per feature or concern. */
export type Slice = keyof SidecarConfig;

const tokenOf = (slice: Slice) => `settings:${slice}`;

/** Injects a slice that the feature's module provides (settingsProviders): never null there. */
export const InjectSettings = (slice: Slice): PropertyDecorator & ParameterDecorator => Inject(tokenOf(slice));

/**
 * The slices a feature module reads, as providers of that module only. A feature module is
 * imported only when its slice is set; asking for an unset one is a wiring error, reported
 * at start-up rather than as a null deep inside a service.
 */
export function settingsProviders(config: SidecarConfig, ...slices: Slice[]): Provider[] {
  return slices.map((slice) => {
    const value = config[slice];
    if (value === null || value === undefined) throw new Error(`a module needs the ${slice} settings, which are not set`);
    return { provide: tokenOf(slice), useValue: value };
  });
}

/** A slice a feature reads when it is set and does without otherwise (injected as null). */
export function optionalSettingsProvider(config: SidecarConfig, slice: Slice): Provider {
  return { provide: tokenOf(slice), useValue: config[slice] ?? null };
}

// Used by: relay, relay/spool, health-check, agent (the modules that can run without some of
// their collaborators). The composition root (app.module.ts) decides from the configuration
// which features exist and hands each module the modules it may use.

import type { DynamicModule, Provider, Type } from '@nestjs/common';

/** A collaborator: the module that provides it when the configuration switched it on, else null. */
export type Collaborator = [module: DynamicModule | null, provides: Type];

/**
 * What a module imports and provides for its optional collaborators: the module of each
 * one that is on, and a null in place of each one that is off. The service declares
 * `@Inject(Collaborator) x: Collaborator | null` (the token is explicit: a nullable type
 * leaves no class in the decorator metadata); it never guesses from what is injectable.
 */
export function collaborators(...pairs: Collaborator[]): { imports: DynamicModule[]; providers: Provider[] } {
  const imports: DynamicModule[] = [];
  const providers: Provider[] = [];
  for (const [module, provides] of pairs) {
    if (module) imports.push(module);
    else providers.push({ provide: provides, useValue: null });
  }
  return { imports, providers };
}

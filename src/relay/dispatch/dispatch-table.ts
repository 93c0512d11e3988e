import type { DispatchConfig } from '../../config/sidecar-config';
import { DEFAULT_RULE_NAME } from '../../config/dispatch.schema';
import { Destination, headerNameIs, resolveDestination } from '../forwarding';
import { CompiledPatch, compilePatches } from './header-patches';

/** Where one request goes and what changes on the way: a dispatch rule, resolved for the hot path. */
export interface Route {
  /** The rule's name, a bounded metrics label; `default` for requests that match no rule. */
  readonly name: string;
  /** Position in DispatchTable.routes, for per-route counters without a lookup by name. */
  readonly index: number;
  /** null: nowhere to send it (no rule destination, no default). */
  readonly destination: Destination | null;
  /** Send the caller's Host rather than the destination's. */
  readonly keepHost: boolean;
  /** null when the route changes no header, so that the hot path skips patching outright. */
  readonly patches: readonly CompiledPatch[] | null;
}

/** The route of a relay without dispatch rules: everything to one destination, unchanged. */
export function singleRoute(destination: URL | null): Route {
  return { name: DEFAULT_RULE_NAME, index: 0, destination: destination && resolveDestination(destination), keepHost: false, patches: null };
}

/**
 * Header-keyed routing, built once from the config: the key header's name lower-cased,
 * a Map from header value to route, every destination parsed. `match` reads the first
 * occurrence of the key header (any case) and looks its value up exactly.
 */
export class DispatchTable {
  /** The default route first, then the rules in file order. */
  readonly routes: readonly Route[];
  readonly fallback: Route;
  private readonly lowerHeader: string;
  private readonly byValue: Map<string, Route>;

  constructor(config: DispatchConfig) {
    this.lowerHeader = config.header.toLowerCase();
    const defaultDestination = config.defaultDestination && resolveDestination(config.defaultDestination);
    this.fallback = { name: DEFAULT_RULE_NAME, index: 0, destination: defaultDestination, keepHost: false, patches: null };
    const rules = config.rules.map((rule, i): Route => ({
      name: rule.name,
      index: i + 1,
      destination: rule.destination ? resolveDestination(rule.destination) : defaultDestination,
      keepHost: rule.keepHost,
      patches: rule.patches.length > 0 ? compilePatches(rule.patches) : null,
    }));
    this.routes = [this.fallback, ...rules];
    this.byValue = new Map(config.rules.map((rule, i) => [rule.value, rules[i]]));
  }

  get header(): string {
    return this.lowerHeader;
  }

  /** The route for a request's raw [name, value, ...] headers; the default when the key header is missing or its value unknown. */
  match(rawHeaders: readonly string[]): Route {
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (headerNameIs(rawHeaders[i], this.lowerHeader)) return this.byValue.get(rawHeaders[i + 1]) ?? this.fallback;
    }
    return this.fallback;
  }
}

import { Controller, Get, Header, Inject } from '@nestjs/common';
import { InjectSettings } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { FEATURE_PARTS, type FeaturePart, STATUS_PARTS, type StatusPartKey } from './feature-part';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page';

const STARTED_AT = new Date(Date.now() - process.uptime() * 1000).toISOString();

/** /status `features`, in order, with what each shows when off (the spool shows as the relay's mode). */
const FEATURES_OFF = {
  relay: null,
  dispatch: false,
  healthCheck: false,
  agent: false,
  debug: false,
  connections: null,
  remoteWrite: false,
  webhookAuth: false,
  coordination: false,
} as const;

/**
 * For operators: /status, a JSON summary of which features are on and what each one last
 * saw, made of the parts the switched-on features contribute (feature-part.ts); and / , a
 * page that shows the same JSON to a person (status-page.ts).
 */
@Controller()
export class StatusController {
  private readonly byKey: ReadonlyMap<StatusPartKey, FeaturePart>;
  private readonly debug: boolean;

  constructor(@Inject(FEATURE_PARTS) parts: FeaturePart[], @InjectSettings('debug') debug: SidecarConfig['debug']) {
    this.byKey = new Map(parts.map((p) => [p.key, p]));
    this.debug = debug.enabled;
  }

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', STATUS_PAGE_CSP)
  @Header('cache-control', 'no-store')
  @Header('x-content-type-options', 'nosniff')
  @Header('referrer-policy', 'no-referrer')
  page(): string {
    return STATUS_PAGE_HTML;
  }

  @Get('status')
  async status() {
    const features: Record<string, unknown> = {};
    for (const [key, off] of Object.entries(FEATURES_OFF)) {
      features[key] = key === 'debug' ? this.debug : (this.byKey.get(key as StatusPartKey)?.feature ?? off);
    }
    const body: Record<string, unknown> = { time: new Date().toISOString(), startedAt: STARTED_AT, features };
    const parts = await Promise.all(STATUS_PARTS.map(async (key) => (await this.byKey.get(key)?.status()) ?? null));
    STATUS_PARTS.forEach((key, i) => (body[key] = parts[i]));
    return body;
  }
}

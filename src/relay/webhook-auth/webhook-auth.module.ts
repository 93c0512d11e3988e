import { DynamicModule, Module } from '@nestjs/common';
import { optionalSettingsProvider, settingsProviders } from '../../config/settings';
import type { SidecarConfig } from '../../config/sidecar-config';
import { WEBHOOK_AUTH_METRICS, WebhookAuth } from './webhook-auth';
import { WebhookAuthStatus } from './webhook-auth.status';

/**
 * Webhook authenticity, for the relay (events are verified before they go anywhere) and
 * the health check (its own events are signed); on when a secret is configured. Dispatch
 * rules may carry their own secrets.
 */
@Module({})
export class WebhookAuthModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: WebhookAuthModule,
      providers: [
        ...settingsProviders(config, 'webhookAuth'),
        optionalSettingsProvider(config, 'dispatch'),
        WebhookAuth,
        WebhookAuthStatus,
        ...WEBHOOK_AUTH_METRICS,
      ],
      exports: [WebhookAuth, WebhookAuthStatus],
    };
  }
}

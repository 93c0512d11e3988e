import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { collaborators } from '../common/wiring';
import { settingsProviders } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { WebhookAuth } from '../relay/webhook-auth/webhook-auth';
import { HealthStatusFile } from './health-status-file';
import { HEALTH_CHECK_METRICS, HealthCheckService } from './health-check.service';
import { HealthCheckStatus } from './health-check.status';
import { HEALTH_EVENTS_METRIC, RoundTrips } from './round-trips';

/**
 * The end-to-end health check (on with SMEE_CHANNEL_URL): its own events through the smee
 * server and client, the status file and probe scripts on the shared volume. RoundTrips,
 * where the relay reports the health-check events it takes, exists either way (the relay
 * tells them from webhooks and counts them even with the check off). With webhook secrets
 * configured its events are signed.
 */
@Module({})
export class HealthCheckModule {
  static forRoot(config: SidecarConfig, uses: { webhookAuth: DynamicModule | null }): DynamicModule {
    const events = [RoundTrips, HEALTH_EVENTS_METRIC];
    if (config.healthCheck === null) return { module: HealthCheckModule, providers: events, exports: [RoundTrips] };
    const optional = collaborators([uses.webhookAuth, WebhookAuth]);
    return {
      module: HealthCheckModule,
      imports: [TerminusModule, ...optional.imports],
      providers: [
        ...settingsProviders(config, 'healthCheck', 'sharedVolume'),
        ...events,
        HealthCheckService,
        HealthCheckStatus,
        HealthStatusFile,
        ...HEALTH_CHECK_METRICS,
        ...optional.providers,
      ],
      exports: [RoundTrips, HealthCheckService, HealthCheckStatus],
    };
  }
}

import { DynamicModule, Module } from '@nestjs/common';
import { StatusFileModule } from '../status-file/status-file.module';
import { HEALTH_CHECK_METRICS, HealthCheckService } from './health-check.service';
import { HEALTH_EVENTS_METRIC, RoundTrips } from './round-trips';

/**
 * Always present, for the relay to report the health-check events it intercepts; the
 * scheduled check itself only when SMEE_CHANNEL_URL is set.
 */
@Module({})
export class HealthCheckModule {
  static register(enabled: boolean): DynamicModule {
    const check = enabled ? [HealthCheckService, ...HEALTH_CHECK_METRICS] : [];
    return {
      module: HealthCheckModule,
      global: true,
      imports: enabled ? [StatusFileModule] : [],
      providers: [RoundTrips, HEALTH_EVENTS_METRIC, ...check],
      exports: enabled ? [RoundTrips, HealthCheckService] : [RoundTrips],
    };
  }
}

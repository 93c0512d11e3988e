import { DynamicModule, Module } from '@nestjs/common';
import { settingsProviders } from '../../config/settings';
import type { SidecarConfig } from '../../config/sidecar-config';
import { CoordinationStatus } from './coordination.status';
import { COORDINATION_METRICS, CoordinationMetrics } from './coordination-metrics';
import { Coordinator } from './coordinator';

/** Coordination between replicas through Redis, for the relay and the spool; on with REDIS_URL beside a relay destination. */
@Module({})
export class CoordinationModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: CoordinationModule,
      providers: [
        ...settingsProviders(config, 'coordination', 'relay'),
        Coordinator,
        CoordinationStatus,
        CoordinationMetrics,
        ...COORDINATION_METRICS,
      ],
      exports: [Coordinator, CoordinationStatus],
    };
  }
}

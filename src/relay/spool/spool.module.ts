import { DynamicModule, Module } from '@nestjs/common';
import { collaborators } from '../../common/wiring';
import { settingsProviders } from '../../config/settings';
import type { SidecarConfig } from '../../config/sidecar-config';
import { Coordinator } from '../coordination/coordinator';
import { DispatchRouter } from '../dispatch/dispatch-router';
import { RelayMetricsModule } from '../relay-metrics';
import { Spool } from './spool';
import { SpoolController } from './spool.controller';
import { SpoolStatus } from './spool.status';
import { SPOOL_GAUGES } from './spool-gauges';
import { SPOOL_METRICS, SpoolMetrics } from './spool-metrics';

/**
 * Store-and-forward for the relay (RELAY_MODE=spool): the relay hands it every event, it
 * delivers them to the destination (or the dispatch rule's), agreeing with other replicas
 * through the coordination module when REDIS_URL is set. /spool on the management port.
 */
@Module({})
export class SpoolModule {
  static forRoot(config: SidecarConfig, uses: { dispatch: DynamicModule | null; coordination: DynamicModule | null }): DynamicModule {
    const optional = collaborators([uses.dispatch, DispatchRouter], [uses.coordination, Coordinator]);
    return {
      module: SpoolModule,
      imports: [RelayMetricsModule, ...optional.imports],
      providers: [
        ...settingsProviders(config, 'spool', 'relay'),
        Spool,
        SpoolStatus,
        SpoolMetrics,
        ...SPOOL_METRICS,
        ...SPOOL_GAUGES,
        ...optional.providers,
      ],
      controllers: [SpoolController],
      exports: [Spool, SpoolStatus],
    };
  }
}

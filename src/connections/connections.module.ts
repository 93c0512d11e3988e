import { DynamicModule, Module } from '@nestjs/common';
import { settingsProviders } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { ConnectionsController } from './connections.controller';
import { ConnectionsMetrics, CONNECTIONS_METRICS } from './connections-metrics';
import { ConnectionsService } from './connections.service';
import { ConnectionsStatus } from './connections.status';
import { ProcNet } from './proc-net';

/** Connection activity of MONITOR_PORT: /connections, gauges, the state file and wait-for-idle.sh. */
@Module({})
export class ConnectionsModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: ConnectionsModule,
      providers: [
        ...settingsProviders(config, 'connections'),
        ProcNet,
        ConnectionsMetrics,
        ConnectionsService,
        ConnectionsStatus,
        ...CONNECTIONS_METRICS,
      ],
      controllers: [ConnectionsController],
      exports: [ConnectionsService, ConnectionsStatus],
    };
  }
}

import { Global, Module } from '@nestjs/common';
import { ConnectionsController } from './connections.controller';
import { ConnectionsMetrics, CONNECTIONS_METRICS } from './connections-metrics';
import { ConnectionsService } from './connections.service';
import { ProcNet } from './proc-net';

/** Connection activity of MONITOR_PORT: /connections, gauges, the state file and wait-for-idle.sh. */
@Global() // for /status, which reads the service when the module is loaded
@Module({
  providers: [ProcNet, ConnectionsMetrics, ConnectionsService, ...CONNECTIONS_METRICS],
  controllers: [ConnectionsController],
  exports: [ConnectionsService],
})
export class ConnectionsModule {}

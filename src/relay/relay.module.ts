import { Global, Module } from '@nestjs/common';
import { RELAY_METRICS, RelayMetrics } from './relay-metrics';
import { RelayServer } from './relay-server';

/** The data plane on RELAY_PORT; its listener is started by the bootstrap once every module is ready. */
@Global()
@Module({ providers: [RelayServer, RelayMetrics, ...RELAY_METRICS], exports: [RelayServer, RelayMetrics] })
export class RelayModule {}

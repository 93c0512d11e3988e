import { Global, Module } from '@nestjs/common';
import { Spool } from './spool';
import { SpoolController } from './spool.controller';
import { SPOOL_GAUGES } from './spool-gauges';
import { SPOOL_METRICS, SpoolMetrics } from './spool-metrics';

/** Store-and-forward for the relay; imported only with RELAY_MODE=spool. The relay server hands it every event. */
@Global()
@Module({ providers: [Spool, SpoolMetrics, ...SPOOL_METRICS, ...SPOOL_GAUGES], controllers: [SpoolController], exports: [Spool] })
export class SpoolModule {}

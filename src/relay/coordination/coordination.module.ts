import { Global, Module } from '@nestjs/common';
import { COORDINATION_METRICS, CoordinationMetrics } from './coordination-metrics';
import { Coordinator } from './coordinator';

/** Coordination between replicas through Redis; imported only with REDIS_URL beside a relay destination. */
@Global()
@Module({ providers: [Coordinator, CoordinationMetrics, ...COORDINATION_METRICS], exports: [Coordinator] })
export class CoordinationModule {}

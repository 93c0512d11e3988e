import { Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';

/** prom-client's registry with process and Node.js default metrics, served at /metrics on the management port. */
@Module({
  imports: [PrometheusModule.register({ path: '/metrics', global: true, defaultMetrics: { enabled: true } })],
})
export class MetricsModule {}

import { Global, Module } from '@nestjs/common';
import { register, Registry } from 'prom-client';
import { RemoteWriteClient } from './remote-write-client';
import { REMOTE_WRITE_METRICS, RemoteWriteMetrics } from './remote-write-metrics';
import { RemoteWriteService } from './remote-write.service';
import { TargetScraper } from './target-scraper';

/** Push by remote write, on when PROMETHEUS_REMOTE_WRITE_URL is set; reads the registry MetricsModule serves. */
@Global()
@Module({
  providers: [
    // The registry @willsoto/nestjs-prometheus registers every sidecar metric in.
    { provide: Registry, useValue: register },
    RemoteWriteService,
    RemoteWriteClient,
    TargetScraper,
    RemoteWriteMetrics,
    ...REMOTE_WRITE_METRICS,
  ],
  exports: [RemoteWriteService],
})
export class RemoteWriteModule {}

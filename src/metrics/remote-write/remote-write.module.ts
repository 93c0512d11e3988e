import { DynamicModule, Module } from '@nestjs/common';
import { register, Registry } from 'prom-client';
import { settingsProviders } from '../../config/settings';
import type { SidecarConfig } from '../../config/sidecar-config';
import { RemoteWriteClient } from './remote-write-client';
import { REMOTE_WRITE_METRICS, RemoteWriteMetrics } from './remote-write-metrics';
import { RemoteWriteService } from './remote-write.service';
import { RemoteWriteStatus } from './remote-write.status';
import { TargetScraper } from './target-scraper';

/** Push by remote write, on when PROMETHEUS_REMOTE_WRITE_URL is set; reads the registry MetricsModule serves. */
@Module({})
export class RemoteWriteModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: RemoteWriteModule,
      providers: [
        ...settingsProviders(config, 'remoteWrite'),
        // The registry @willsoto/nestjs-prometheus registers every sidecar metric in.
        { provide: Registry, useValue: register },
        RemoteWriteService,
        RemoteWriteStatus,
        RemoteWriteClient,
        TargetScraper,
        RemoteWriteMetrics,
        ...REMOTE_WRITE_METRICS,
      ],
      exports: [RemoteWriteService, RemoteWriteStatus],
    };
  }
}

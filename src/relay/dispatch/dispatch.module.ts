import { DynamicModule, Module } from '@nestjs/common';
import { settingsProviders } from '../../config/settings';
import type { SidecarConfig } from '../../config/sidecar-config';
import { DISPATCH_METRICS, DispatchRouter } from './dispatch-router';
import { DispatchStatus } from './dispatch.status';

/** Header-keyed routing for the relay and the spool; on when the config file has dispatch rules. */
@Module({})
export class DispatchModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: DispatchModule,
      providers: [...settingsProviders(config, 'dispatch'), DispatchRouter, DispatchStatus, ...DISPATCH_METRICS],
      exports: [DispatchRouter, DispatchStatus],
    };
  }
}

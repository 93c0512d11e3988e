import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { settingsProviders } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { AdminGuard } from './admin.guard';
import { FEATURE_PARTS, type FeatureModule } from './feature-part';
import { ProbesController } from './probes.controller';
import { StatusController } from './status.controller';

/**
 * Routes of the management port besides /metrics and each feature's own: the probes and
 * /status, made of the parts the switched-on features contribute (feature-part.ts); and
 * the port's access rules, applied to every route on it (AdminGuard, app-wide).
 */
@Module({})
export class ManagementModule {
  static forRoot(config: SidecarConfig, features: FeatureModule[]): DynamicModule {
    const parts = features.map((f) => f.part);
    return {
      module: ManagementModule,
      imports: [TerminusModule.forRoot({ logger: false }), ...features.map((f) => f.module)],
      controllers: [ProbesController, StatusController],
      providers: [
        ...settingsProviders(config, 'management', 'debug'),
        { provide: APP_GUARD, useClass: AdminGuard },
        { provide: FEATURE_PARTS, useFactory: (...found: unknown[]) => found, inject: parts },
      ],
    };
  }
}

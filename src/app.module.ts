import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { AgentModule } from './agent/agent.module';
import { CompatModule } from './compat/compat.module';
import type { SidecarConfig } from './config/sidecar-config';
import { ConnectionsModule } from './connections/connections.module';
import { DebugModule } from './debug/debug.module';
import { HealthCheckModule } from './health-check/health-check.module';
import { ManagementModule } from './management/management.module';
import { MetricsModule } from './metrics/metrics.module';
import { RemoteWriteModule } from './metrics/remote-write/remote-write.module';
import { DispatchModule } from './relay/dispatch/dispatch.module';
import { CoordinationModule } from './relay/coordination/coordination.module';
import { RelayModule } from './relay/relay.module';
import { SpoolModule } from './relay/spool/spool.module';
import { WebhookAuthModule } from './relay/webhook-auth/webhook-auth.module';

/** The whole sidecar; each feature module is imported only when its config slice is set. */
@Module({})
export class AppModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, skipProcessEnv: true, load: [() => config] }),
        ScheduleModule.forRoot(),
        MetricsModule,
        HealthCheckModule.register(config.healthCheck !== null),
        ...(config.relay ? [RelayModule] : []),
        ...(config.dispatch ? [DispatchModule] : []),
        ...(config.webhookAuth ? [WebhookAuthModule] : []),
        ...(config.agent ? [AgentModule] : []),
        ...(config.connections ? [ConnectionsModule] : []),
        ...(config.spool ? [SpoolModule] : []),
        ...(config.coordination ? [CoordinationModule] : []),
        ManagementModule,
        ...(config.debug.enabled ? [DebugModule] : []),
        ...(config.remoteWrite ? [RemoteWriteModule] : []),
        ...(config.compat.preset ? [CompatModule.register(config.compat)] : []),
      ],
    };
  }
}

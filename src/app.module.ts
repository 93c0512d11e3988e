import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { AgentModule } from './agent/agent.module';
import { AgentStatus } from './agent/agent.status';
import { CompatModule } from './compat/compat.module';
import type { SidecarConfig } from './config/sidecar-config';
import { ConnectionsModule } from './connections/connections.module';
import { ConnectionsStatus } from './connections/connections.status';
import { DebugModule } from './debug/debug.module';
import { HealthCheckModule } from './health-check/health-check.module';
import { HealthCheckStatus } from './health-check/health-check.status';
import type { FeatureModule } from './management/feature-part';
import { ManagementModule } from './management/management.module';
import { MetricsModule } from './metrics/metrics.module';
import { RemoteWriteModule } from './metrics/remote-write/remote-write.module';
import { RemoteWriteStatus } from './metrics/remote-write/remote-write.status';
import { CoordinationModule } from './relay/coordination/coordination.module';
import { CoordinationStatus } from './relay/coordination/coordination.status';
import { DispatchModule } from './relay/dispatch/dispatch.module';
import { DispatchStatus } from './relay/dispatch/dispatch.status';
import { RelayModule } from './relay/relay.module';
import { RelayStatus } from './relay/relay.status';
import { SpoolModule } from './relay/spool/spool.module';
import { SpoolStatus } from './relay/spool/spool.status';
import { WebhookAuthModule } from './relay/webhook-auth/webhook-auth.module';
import { WebhookAuthStatus } from './relay/webhook-auth/webhook-auth.status';

/**
 * The composition root: which features exist is decided here, from the configuration,
 * and nowhere else. Each feature module is built once (the same object wherever it is
 * imported, so one instance) and handed the modules of the collaborators it may use;
 * only the configuration and the metrics registry are global.
 */
@Module({})
export class AppModule {
  static forRoot(config: SidecarConfig): DynamicModule {
    const on = <T>(enabled: unknown, make: () => T): T | null => (enabled ? make() : null);
    const webhookAuth = on(config.webhookAuth, () => WebhookAuthModule.forRoot(config));
    const dispatch = on(config.dispatch, () => DispatchModule.forRoot(config));
    const coordination = on(config.coordination, () => CoordinationModule.forRoot(config));
    // Always there: the relay reports the health check's events to it, even with the check off.
    const healthEvents = HealthCheckModule.forRoot(config, { webhookAuth });
    const healthCheck = config.healthCheck ? healthEvents : null;
    const spool = on(config.spool, () => SpoolModule.forRoot(config, { dispatch, coordination }));
    const relay = on(config.relay, () =>
      RelayModule.forRoot(config, { healthCheck: healthEvents, dispatch, spool, coordination, webhookAuth }),
    );
    const agent = on(config.agent, () => AgentModule.forRoot(config, { healthCheck }));
    const connections = on(config.connections, () => ConnectionsModule.forRoot(config));
    const remoteWrite = on(config.remoteWrite, () => RemoteWriteModule.forRoot(config));

    // What each switched-on feature shows on the management port (/status, /healthz, /readyz).
    const candidates: Array<FeatureModule | null> = [
      relay && { module: relay, part: RelayStatus },
      dispatch && { module: dispatch, part: DispatchStatus },
      spool && { module: spool, part: SpoolStatus },
      coordination && { module: coordination, part: CoordinationStatus },
      webhookAuth && { module: webhookAuth, part: WebhookAuthStatus },
      healthCheck && { module: healthCheck, part: HealthCheckStatus },
      connections && { module: connections, part: ConnectionsStatus },
      remoteWrite && { module: remoteWrite, part: RemoteWriteStatus },
      agent && { module: agent, part: AgentStatus },
    ];
    const features = candidates.filter((f): f is FeatureModule => f !== null);

    return {
      module: AppModule,
      imports: [
        // The whole validated configuration, for code that is no feature's (features take their slices).
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, skipProcessEnv: true, load: [() => config] }),
        ScheduleModule.forRoot(),
        MetricsModule,
        healthEvents,
        ...features.map((f) => f.module),
        ManagementModule.forRoot(config, features),
        ...(config.debug.enabled ? [DebugModule] : []),
        ...(config.compat.preset ? [CompatModule.register(config.compat)] : []),
      ],
    };
  }
}

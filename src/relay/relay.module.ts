import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { collaborators } from '../common/wiring';
import { settingsProviders } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { Coordinator } from './coordination/coordinator';
import { DispatchRouter } from './dispatch/dispatch-router';
import { RelayMetricsModule } from './relay-metrics';
import { RelayServer } from './relay-server';
import { RelayStatus } from './relay.status';
import { Spool } from './spool/spool';
import { WebhookAuth } from './webhook-auth/webhook-auth';

/**
 * The data plane on RELAY_PORT (on when the relay has a destination or the health check
 * is on). It reports the health check's own events to the health-check module; the
 * dispatch, spool, coordination and webhook-auth modules are used when they are on.
 */
@Module({})
export class RelayModule {
  static forRoot(
    config: SidecarConfig,
    uses: {
      healthCheck: DynamicModule;
      dispatch: DynamicModule | null;
      spool: DynamicModule | null;
      coordination: DynamicModule | null;
      webhookAuth: DynamicModule | null;
    },
  ): DynamicModule {
    const optional = collaborators(
      [uses.dispatch, DispatchRouter],
      [uses.spool, Spool],
      [uses.coordination, Coordinator],
      [uses.webhookAuth, WebhookAuth],
    );
    return {
      module: RelayModule,
      imports: [uses.healthCheck, RelayMetricsModule, TerminusModule, ...optional.imports],
      providers: [...settingsProviders(config, 'relay', 'server', 'log'), RelayServer, RelayStatus, ...optional.providers],
      exports: [RelayServer, RelayStatus],
    };
  }
}

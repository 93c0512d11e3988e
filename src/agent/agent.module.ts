import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { collaborators } from '../common/wiring';
import { optionalSettingsProvider, settingsProviders } from '../config/settings';
import type { SidecarConfig } from '../config/sidecar-config';
import { HealthCheckService } from '../health-check/health-check.service';
import { AgentController } from './agent.controller';
import { AGENT_METRICS, AgentMetrics } from './agent-metrics';
import { AgentServer } from './agent-server';
import { AgentService } from './agent.service';
import { AgentStatus } from './agent.status';
import { DrainStatusFile } from './drain-status-file';
import { UpstreamClient } from './upstream-client';

/**
 * Drain control and the HAProxy agent: upstream polling, status file, flap mitigation,
 * weight, the TCP agent (when AGENT_PORT is set) and the report on the management port.
 * With the health check on, its verdict is one of the agent's inputs.
 */
@Module({})
export class AgentModule {
  static forRoot(config: SidecarConfig, uses: { healthCheck: DynamicModule | null }): DynamicModule {
    const optional = collaborators([uses.healthCheck, HealthCheckService]);
    return {
      module: AgentModule,
      imports: [TerminusModule, ...optional.imports],
      controllers: [AgentController],
      providers: [
        ...settingsProviders(config, 'agent', 'server'),
        optionalSettingsProvider(config, 'healthCheck'),
        AgentService,
        AgentServer,
        AgentStatus,
        AgentMetrics,
        UpstreamClient,
        DrainStatusFile,
        ...AGENT_METRICS,
        ...optional.providers,
      ],
      exports: [AgentService, AgentServer, AgentStatus],
    };
  }
}

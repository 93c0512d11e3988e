import { Global, Module } from '@nestjs/common';
import { AgentController } from './agent.controller';
import { AGENT_METRICS, AgentMetrics } from './agent-metrics';
import { AgentServer } from './agent-server';
import { AgentService } from './agent.service';
import { StatusFileReader } from './status-file-reader';
import { UpstreamClient } from './upstream-client';

/**
 * Drain control and the HAProxy agent: upstream polling, status file, flap mitigation,
 * weight, the TCP agent (when AGENT_PORT is set) and the report on the management port.
 * Its polling and its listener are started by the bootstrap once every module is ready.
 */
@Global()
@Module({
  controllers: [AgentController],
  providers: [AgentService, AgentServer, AgentMetrics, UpstreamClient, StatusFileReader, ...AGENT_METRICS],
  exports: [AgentService, AgentServer],
})
export class AgentModule {}

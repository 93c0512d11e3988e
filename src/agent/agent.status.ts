import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { FeaturePart } from '../management/feature-part';
import { AgentServer } from './agent-server';
import { AgentService } from './agent.service';

/**
 * The agent's part of /status (the whole picture is /agent/report) and its readiness:
 * AGENT_PORT listens when set. The agent's verdict is not part of readiness: a drained or
 * down node must stay in the Service (and in HAProxy's server list) to be drained, so
 * HAProxy decides from the agent line.
 */
@Injectable()
export class AgentStatus implements FeaturePart {
  readonly key = 'agent';
  readonly feature = true;

  constructor(
    private readonly agent: AgentService,
    private readonly server: AgentServer,
    private readonly indicator: HealthIndicatorService,
  ) {}

  status() {
    return { ...this.agent.summary(), since: this.agent.since?.toISOString() ?? null };
  }

  readiness() {
    if (this.server.port === null) return [];
    const key = this.indicator.check('agent');
    return [this.server.listening ? key.up({ port: this.server.port }) : key.down('agent port is not listening')];
  }
}

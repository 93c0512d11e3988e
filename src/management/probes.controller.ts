import { Controller, Get, Optional } from '@nestjs/common';
import { HealthCheck, HealthCheckService as Terminus, HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { AgentServer } from '../agent/agent-server';
import { HealthCheckService } from '../health-check/health-check.service';
import { RelayServer } from '../relay/relay-server';

/**
 * HTTP probes beside the file probes. /healthz: the process answers and its check loop
 * turns. /readyz: the relay listens and, with the health check on, the last round trip
 * through the smee server and client succeeded; with AGENT_PORT set, the agent listens.
 * The agent's verdict is not part of it: a drained or down node must stay in the Service
 * (and in HAProxy's server list) to be drained, so HAProxy decides from the agent line.
 */
@Controller()
export class ProbesController {
  constructor(
    private readonly terminus: Terminus,
    private readonly indicator: HealthIndicatorService,
    @Optional() private readonly relay?: RelayServer,
    @Optional() private readonly healthCheck?: HealthCheckService,
    @Optional() private readonly agentServer?: AgentServer,
  ) {}

  @Get('healthz')
  @HealthCheck()
  liveness() {
    const checks: Array<() => HealthIndicatorResult> = [
      () => this.indicator.check('process').up({ uptimeSeconds: Math.round(process.uptime()) }),
    ];
    const hc = this.healthCheck;
    if (hc) {
      checks.push(() => {
        const key = this.indicator.check('healthCheckLoop');
        return hc.loopAlive ? key.up() : key.down('no health check started for two intervals');
      });
    }
    return this.terminus.check(checks);
  }

  @Get('readyz')
  @HealthCheck()
  readiness() {
    const checks: Array<() => HealthIndicatorResult> = [];
    const relay = this.relay;
    if (relay) {
      checks.push(() =>
        relay.listening
          ? this.indicator.check('relay').up({ port: relay.port })
          : this.indicator.check('relay').down('relay port is not listening'),
      );
    }
    const hc = this.healthCheck;
    if (hc) {
      checks.push(() => {
        const last = hc.last;
        const key = this.indicator.check('smeeRoundTrip');
        if (last === null) return key.down('first health check has not completed yet');
        const data = { message: last.message, checkedAt: last.checkedAt.toISOString() };
        return last.status === 'success' ? key.up(data) : key.down(data);
      });
    }
    const agent = this.agentServer;
    if (agent && agent.port !== null) {
      checks.push(() =>
        agent.listening
          ? this.indicator.check('agent').up({ port: agent.port })
          : this.indicator.check('agent').down('agent port is not listening'),
      );
    }
    return this.terminus.check(checks);
  }
}

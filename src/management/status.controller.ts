import { Controller, Get, Header, Inject, Optional } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AgentService } from '../agent/agent.service';
import type { SidecarConfig } from '../config/sidecar-config';
import { toAnswer } from '../connections/activity';
import { ConnectionsService } from '../connections/connections.service';
import { HealthCheckService } from '../health-check/health-check.service';
import { RemoteWriteService } from '../metrics/remote-write/remote-write.service';
import { Coordinator } from '../relay/coordination/coordinator';
import { RelayServer } from '../relay/relay-server';
import { Spool } from '../relay/spool/spool';
import { countsBy, latencyBy, samplesOf } from './metric-figures';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML } from './status-page';

const STARTED_AT = new Date(Date.now() - process.uptime() * 1000).toISOString();

/**
 * For operators: /status, a JSON summary of which features are on and what each one last
 * saw; and / , a page that shows the same JSON to a person (status-page.ts).
 */
@Controller()
export class StatusController {
  constructor(
    @Inject(ConfigService) private readonly config: ConfigService<SidecarConfig, true>,
    @Optional() private readonly relay?: RelayServer,
    @Optional() private readonly healthCheck?: HealthCheckService,
    @Optional() private readonly agent?: AgentService,
    @Optional() private readonly connections?: ConnectionsService,
    @Optional() private readonly remoteWrite?: RemoteWriteService,
    @Optional() private readonly spool?: Spool,
    @Optional() private readonly coordinator?: Coordinator,
  ) {}

  @Get()
  @Header('content-type', 'text/html; charset=utf-8')
  @Header('content-security-policy', STATUS_PAGE_CSP)
  @Header('cache-control', 'no-store')
  @Header('x-content-type-options', 'nosniff')
  @Header('referrer-policy', 'no-referrer')
  page(): string {
    return STATUS_PAGE_HTML;
  }

  @Get('status')
  async status() {
    const relay = this.config.get('relay', { infer: true });
    const dispatch = this.config.get('dispatch', { infer: true });
    const webhookAuth = this.config.get('webhookAuth', { infer: true });
    const last = this.healthCheck?.last ?? null;
    const activity = this.connections?.last ?? null;
    const [requests, durations] = this.relay
      ? await Promise.all([samplesOf('sidecar_relay_requests_total'), samplesOf('sidecar_relay_duration_seconds')])
      : [[], []];
    return {
      time: new Date().toISOString(),
      startedAt: STARTED_AT,
      features: {
        relay: relay?.downstreamUrl || dispatch ? relay!.mode : null,
        dispatch: dispatch !== null,
        healthCheck: this.healthCheck !== undefined,
        agent: this.agent !== undefined,
        debug: this.config.get('debug', { infer: true }).enabled,
        connections: this.config.get('connections', { infer: true })?.ports ?? null,
        remoteWrite: this.remoteWrite !== undefined,
        webhookAuth: webhookAuth !== null,
        coordination: this.coordinator !== undefined,
      },
      relay: this.relay
        ? {
            listening: this.relay.listening,
            port: this.relay.port,
            inFlight: this.relay.requestsInFlight,
            // Since start-up, as sidecar_relay_requests_total and sidecar_relay_duration_seconds count them.
            requests: countsBy(requests, 'outcome'),
            latency: latencyBy('sidecar_relay_duration_seconds', durations, 'status_class'),
          }
        : null,
      // Rule names only: destinations may carry credentials or tokens in their query.
      dispatch: dispatch
        ? { header: dispatch.header, rules: dispatch.rules.map((r) => r.name), hasDefault: dispatch.defaultDestination !== null }
        : null,
      spool: this.spool?.figures() ?? null,
      coordination: this.coordinator?.status() ?? null,
      // Where the secrets come from, never what they are.
      webhookAuth: webhookAuth
        ? {
            secret: webhookAuth.secret === null ? null : 'file' in webhookAuth.secret ? 'file' : 'variable',
            rulesWithOwnSecret: dispatch?.rules.filter((r) => r.secret !== undefined).map((r) => r.name) ?? [],
            toleranceSeconds: webhookAuth.toleranceMs / 1000,
          }
        : null,
      healthCheck: this.healthCheck
        ? {
            status: last?.status ?? 'pending',
            message: last?.message ?? null,
            checkedAt: last?.checkedAt.toISOString() ?? null,
            roundTripMs: last?.roundTripMs !== undefined ? Math.round(last.roundTripMs) : null,
            since: this.healthCheck.since?.toISOString() ?? null,
            intervalSeconds: this.healthCheck.intervalMs / 1000,
            history: this.healthCheck.history,
          }
        : null,
      // The last scheduled or requested read; GET /connections reads afresh.
      connections: activity ? toAnswer(activity, Date.now()) : null,
      remoteWrite: this.remoteWrite?.status() ?? null,
      // The full picture is /agent/report.
      agent: this.agent ? { ...agentSummary(this.agent.verdict()), since: this.agent.since?.toISOString() ?? null } : null,
    };
  }
}

function agentSummary(v: { healthy: boolean; damped: boolean; status: string; weight: number; agentMessage: string; reasons: string[] }) {
  return {
    healthy: v.healthy,
    damped: v.damped,
    status: v.status,
    weight: `${v.weight}%`,
    agentMessage: v.agentMessage.trimEnd(),
    reasons: v.reasons,
  };
}

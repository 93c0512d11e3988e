import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';
import { HEALTH_CHECK_INPUT } from '../config/agent.schema';
import { InjectSettings } from '../config/settings';
import type { AgentConfig, HealthCheckConfig } from '../config/sidecar-config';
import type { Round, StatusFileState, Verdict } from './agent-state';

const ADMIN_STATES = ['ready', 'drain', 'maint'] as const;
const FILE_STATES: readonly StatusFileState[] = ['ready', 'drain', 'maint', 'unhealthy', 'invalid', 'missing', 'unreadable'];
const CHECK_RESULTS = ['ok', 'soft_down', 'down'] as const;

export const AGENT_METRICS = [
  makeGaugeProvider({
    name: 'sidecar_agent_healthy',
    help: 'Health as the agent reports it (after dampening and drain grace): 1 up, 0 down.',
  }),
  makeGaugeProvider({
    name: 'sidecar_agent_damped',
    help: "1 while dampening or the drain grace makes the reported health differ from the last round's.",
  }),
  makeGaugeProvider({
    name: 'sidecar_agent_status',
    help: 'Reported admin state: 1 for the current one of ready, drain, maint.',
    labelNames: ['status'],
  }),
  makeGaugeProvider({
    name: 'sidecar_agent_weight_percent',
    help: "Weight in the agent's reply, percent of the server's configured weight.",
  }),
  makeGaugeProvider({
    name: 'sidecar_agent_status_file',
    help: 'What the status file said in the last round: 1 for the current one of ready, drain, maint, unhealthy, invalid, missing, unreadable.',
    labelNames: ['state'],
  }),
  makeGaugeProvider({
    name: 'sidecar_agent_check_up',
    help: 'Last result of each upstream check (and of the smee round trip as check="health-check"): 1 as expected, 0 not.',
    labelNames: ['check'],
  }),
  makeCounterProvider({
    name: 'sidecar_agent_checks_total',
    help: 'Upstream check results by check and result: ok, soft_down, down.',
    labelNames: ['check', 'result'],
  }),
  makeGaugeProvider({ name: 'sidecar_agent_load', help: 'Last value read from the load source; NaN when it could not be read.' }),
  makeCounterProvider({
    name: 'sidecar_agent_load_errors_total',
    help: 'Rounds in which the load source could not be read (unreachable, not JSON, no such field, too large).',
  }),
  makeCounterProvider({ name: 'sidecar_agent_replies_total', help: 'Replies sent on the HAProxy agent port.' }),
];

/** The agent's metrics, every series made at start-up from the configured check names. */
@Injectable()
export class AgentMetrics {
  private readonly statusChildren;
  private readonly fileChildren;

  constructor(
    @InjectSettings('agent') agent: AgentConfig,
    @InjectSettings('healthCheck') healthCheck: HealthCheckConfig | null,
    @InjectMetric('sidecar_agent_healthy') private readonly healthy: Gauge,
    @InjectMetric('sidecar_agent_damped') private readonly damped: Gauge,
    @InjectMetric('sidecar_agent_status') status: Gauge<'status'>,
    @InjectMetric('sidecar_agent_weight_percent') private readonly weight: Gauge,
    @InjectMetric('sidecar_agent_status_file') file: Gauge<'state'>,
    @InjectMetric('sidecar_agent_check_up') private readonly checkUp: Gauge<'check'>,
    @InjectMetric('sidecar_agent_checks_total') private readonly checks: Counter<'check' | 'result'>,
    @InjectMetric('sidecar_agent_load') private readonly load: Gauge,
    @InjectMetric('sidecar_agent_load_errors_total') private readonly loadErrors: Counter,
    @InjectMetric('sidecar_agent_replies_total') private readonly replies: Counter,
  ) {
    const names = agent.upstreams.map((u) => u.name);
    if (healthCheck) names.push(HEALTH_CHECK_INPUT);
    for (const name of names) {
      checkUp.labels(name).set(0);
      for (const result of CHECK_RESULTS) checks.labels(name, result).inc(0);
    }
    this.statusChildren = ADMIN_STATES.map((s) => [s, status.labels(s)] as const);
    this.fileChildren = FILE_STATES.map((s) => [s, file.labels(s)] as const);
    this.verdict({ healthy: false, damped: false, status: 'drain', weight: 0, agentMessage: '', reasons: [] });
    for (const [, child] of this.fileChildren) child.set(0);
    load.set(Number.NaN);
    loadErrors.inc(0);
    replies.inc(0);
  }

  round(round: Round): void {
    for (const c of round.checks) {
      this.checkUp.labels(c.name).set(c.ok ? 1 : 0);
      if (!c.pending) this.checks.labels(c.name, c.ok ? 'ok' : c.softDown ? 'soft_down' : 'down').inc();
    }
    for (const [state, child] of this.fileChildren) child.set(state === round.statusFile.state ? 1 : 0);
    if (round.load) {
      this.load.set(round.load.value ?? Number.NaN);
      if (round.load.value === null) this.loadErrors.inc();
    }
  }

  verdict(v: Verdict): void {
    this.healthy.set(v.healthy ? 1 : 0);
    this.damped.set(v.damped ? 1 : 0);
    for (const [status, child] of this.statusChildren) child.set(status === v.status ? 1 : 0);
    this.weight.set(v.weight);
  }

  reply(): void {
    this.replies.inc();
  }
}

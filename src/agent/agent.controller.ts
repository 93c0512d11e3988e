import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AgentReport, AgentService } from './agent.service';
import type { SignalReport } from './signal-report';

/**
 * The agent's HTTP face on the management port, under its own name and under
 * signal-sidecar's (/signal/health, and /signal/report in signal-sidecar's report shape), so
 * that health checkers and tools pointed at signal-sidecar work unchanged.
 */
@Controller()
export class AgentController {
  constructor(private readonly agent: AgentService) {}

  /** 200 `OK` when the node is reported healthy (after dampening and drain grace), else 503 `NOT_OK`. */
  @Get(['agent/health', 'signal/health'])
  health(@Res({ passthrough: true }) reply: FastifyReply): string {
    const healthy = this.agent.verdict().healthy;
    reply.status(healthy ? 200 : 503).header('content-type', 'text/plain; charset=utf-8');
    return healthy ? 'OK' : 'NOT_OK';
  }

  /** The whole picture as JSON; 200 when healthy, 503 when not (signal-sidecar's documented codes). */
  @Get('agent/report')
  report(@Res({ passthrough: true }) reply: FastifyReply): AgentReport {
    const report = this.agent.report();
    reply.status(report.healthy ? 200 : 503);
    return report;
  }

  /** The same in signal-sidecar's documented JSON shape, with the same codes. */
  @Get('signal/report')
  signalReport(@Res({ passthrough: true }) reply: FastifyReply): SignalReport {
    const report = this.agent.signalReport();
    reply.status(report.healthy ? 200 : 503);
    return report;
  }
}

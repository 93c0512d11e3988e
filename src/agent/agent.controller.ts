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

  /**
   * signal-sidecar's census: prosody's mod_muc_census answer as last read ({"room_census": [...]}).
   * 404 when CENSUS_POLL is off; 503 before the first read and while the last read failed.
   */
  @Get('signal/census')
  census(@Res({ passthrough: true }) reply: FastifyReply): unknown {
    const { enabled, reading } = this.agent.census;
    if (!enabled) {
      reply.status(404);
      return { error: 'census_off', message: 'the census is not polled: set CENSUS_POLL=true and CENSUS_HOST' };
    }
    if (reading === null || !reading.ok) {
      reply.status(503);
      return {
        error: 'census_unavailable',
        message: reading === null ? 'no census read yet' : `the last census read failed: ${reading.error}`,
      };
    }
    return { room_census: reading.rooms };
  }

  /** The same in signal-sidecar's documented JSON shape, with the same codes. */
  @Get('signal/report')
  signalReport(@Res({ passthrough: true }) reply: FastifyReply): SignalReport {
    const report = this.agent.signalReport();
    reply.status(report.healthy ? 200 : 503);
    return report;
  }
}

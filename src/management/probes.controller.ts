import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService as Terminus, HealthIndicatorService } from '@nestjs/terminus';
import { FEATURE_PARTS, type FeaturePart } from './feature-part';

/**
 * HTTP probes beside the file probes, made of the features' own checks (feature-part.ts).
 * /healthz: the process answers, and each feature's liveness checks (the health check's
 * loop turns). /readyz: each feature's readiness checks (the relay and the agent listen,
 * the last round trip through the smee server and client succeeded).
 */
@Controller()
export class ProbesController {
  constructor(
    private readonly terminus: Terminus,
    private readonly indicator: HealthIndicatorService,
    @Inject(FEATURE_PARTS) private readonly parts: FeaturePart[],
  ) {}

  @Get('healthz')
  @HealthCheck()
  liveness() {
    return this.terminus.check([
      () => this.indicator.check('process').up({ uptimeSeconds: Math.round(process.uptime()) }),
      ...this.parts.flatMap((p) => (p.liveness ? p.liveness().map((result) => () => result) : [])),
    ]);
  }

  @Get('readyz')
  @HealthCheck()
  readiness() {
    return this.terminus.check(this.parts.flatMap((p) => (p.readiness ? p.readiness().map((result) => () => result) : [])));
  }
}

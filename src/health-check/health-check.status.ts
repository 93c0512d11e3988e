import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { FeaturePart } from '../management/feature-part';
import { HealthCheckService } from './health-check.service';

/**
 * The health check's part of /status and of the probes: /healthz fails when its loop
 * stopped turning (Kubernetes restarts the sidecar); /readyz while the last round trip
 * through the smee server and client failed.
 */
@Injectable()
export class HealthCheckStatus implements FeaturePart {
  readonly key = 'healthCheck';
  readonly feature = true;

  constructor(
    private readonly check: HealthCheckService,
    private readonly indicator: HealthIndicatorService,
  ) {}

  status() {
    const last = this.check.last;
    return {
      status: last?.status ?? 'pending',
      message: last?.message ?? null,
      checkedAt: last?.checkedAt.toISOString() ?? null,
      roundTripMs: last?.roundTripMs !== undefined ? Math.round(last.roundTripMs) : null,
      since: this.check.since?.toISOString() ?? null,
      intervalSeconds: this.check.intervalMs / 1000,
      history: this.check.history,
    };
  }

  liveness() {
    const key = this.indicator.check('healthCheckLoop');
    return [this.check.loopAlive ? key.up() : key.down('no health check started for two intervals')];
  }

  readiness() {
    const last = this.check.last;
    const key = this.indicator.check('smeeRoundTrip');
    if (last === null) return [key.down('first health check has not completed yet')];
    const data = { message: last.message, checkedAt: last.checkedAt.toISOString() };
    return [last.status === 'success' ? key.up(data) : key.down(data)];
  }
}

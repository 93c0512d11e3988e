import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { FeaturePart } from '../management/feature-part';
import { countsBy, latencyBy, samplesOf } from '../metrics/metric-figures';
import { DispatchRouter } from './dispatch/dispatch-router';
import { RelayServer } from './relay-server';

/** The relay's part of /status, and its readiness: RELAY_PORT listens. */
@Injectable()
export class RelayStatus implements FeaturePart {
  readonly key = 'relay';
  /** The relay's mode; null while it only takes the health check's own events (no destination). */
  readonly feature: 'proxy' | 'spool' | null;

  constructor(
    private readonly relay: RelayServer,
    private readonly indicator: HealthIndicatorService,
    @Inject(DispatchRouter) router: DispatchRouter | null,
  ) {
    this.feature = relay.config.downstreamUrl || router ? relay.config.mode : null;
  }

  async status() {
    const [requests, durations] = await Promise.all([
      samplesOf('sidecar_relay_requests_total'),
      samplesOf('sidecar_relay_duration_seconds'),
    ]);
    return {
      listening: this.relay.listening,
      port: this.relay.port,
      inFlight: this.relay.requestsInFlight,
      // Since start-up, as sidecar_relay_requests_total and sidecar_relay_duration_seconds count them.
      requests: countsBy(requests, 'outcome'),
      latency: latencyBy('sidecar_relay_duration_seconds', durations, 'status_class'),
    };
  }

  readiness() {
    const check = this.indicator.check('relay');
    return [this.relay.listening ? check.up({ port: this.relay.port }) : check.down('relay port is not listening')];
  }
}

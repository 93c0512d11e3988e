import { Controller, Get, Inject, Optional } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { SidecarConfig } from '../config/sidecar-config';
import { HealthCheckService } from '../health-check/health-check.service';
import { RelayServer } from '../relay/relay-server';
import { Spool } from '../relay/spool/spool';

/** A JSON summary for operators: which features are on and what each one last saw. */
@Controller()
export class StatusController {
  constructor(
    @Inject(ConfigService) private readonly config: ConfigService<SidecarConfig, true>,
    @Optional() private readonly relay?: RelayServer,
    @Optional() private readonly healthCheck?: HealthCheckService,
    @Optional() private readonly spool?: Spool,
  ) {}

  @Get('status')
  status() {
    const relay = this.config.get('relay', { infer: true });
    const dispatch = this.config.get('dispatch', { infer: true });
    const last = this.healthCheck?.last ?? null;
    return {
      time: new Date().toISOString(),
      features: {
        relay: relay?.downstreamUrl || dispatch ? relay!.mode : null,
        dispatch: dispatch !== null,
        healthCheck: this.healthCheck !== undefined,
        debug: this.config.get('debug', { infer: true }).enabled,
      },
      relay: this.relay ? { listening: this.relay.listening, port: this.relay.port, inFlight: this.relay.requestsInFlight } : null,
      // Rule names only: destinations may carry credentials or tokens in their query.
      dispatch: dispatch ? { header: dispatch.header, rules: dispatch.rules.map((r) => r.name), hasDefault: dispatch.defaultDestination !== null } : null,
      spool: this.spool?.figures() ?? null,
      healthCheck: this.healthCheck
        ? {
            status: last?.status ?? 'pending',
            message: last?.message ?? null,
            checkedAt: last?.checkedAt.toISOString() ?? null,
            roundTripMs: last?.roundTripMs !== undefined ? Math.round(last.roundTripMs) : null,
          }
        : null,
    };
  }
}


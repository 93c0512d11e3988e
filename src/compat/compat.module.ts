import { Controller, DynamicModule, Get, Header, Module, Type } from '@nestjs/common';
import { makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { CompatConfig } from '../config/presets';

/** signal-sidecar's and the metrics pusher's GET /health: 200 while the process serves. */
@Controller()
class HealthController {
  @Get('health')
  @Header('content-type', 'text/plain; charset=utf-8')
  health(): string {
    return 'OK';
  }
}

/** The metrics pusher's GET /ready: 200 once started (a failing receiver is retried, not a reason to stop traffic). */
@Controller()
class ReadyController {
  @Get('ready')
  @Header('content-type', 'text/plain; charset=utf-8')
  ready(): string {
    return 'OK';
  }
}

const PUSHER = 'knative_lambda_metric_pusher_';

/** The metrics pusher's series under its names, computed each time they are collected (scrape or push). */
export const PUSHER_SERIES = [
  makeGaugeProvider({
    name: `${PUSHER}heartbeat`,
    help: "Unix time in seconds when the series were last collected (the metrics pusher's heartbeat).",
    collect() {
      this.set(Math.floor(Date.now() / 1000));
    },
  }),
  makeGaugeProvider({
    name: `${PUSHER}uptime_seconds`,
    help: 'Seconds since the process started.',
    collect() {
      this.set(process.uptime());
    },
  }),
  makeGaugeProvider({
    name: `${PUSHER}system_memory_alloc_bytes`,
    help: "V8 heap bytes in use (the Go runtime's Alloc in the metrics pusher).",
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  }),
  makeGaugeProvider({
    name: `${PUSHER}system_memory_sys_bytes`,
    help: 'Resident set size in bytes (memory taken from the system).',
    collect() {
      this.set(process.memoryUsage.rss());
    },
  }),
];

/** What a drop-in preset serves beyond the sidecar's own routes (src/config/presets.ts). */
@Module({})
export class CompatModule {
  static register(compat: CompatConfig): DynamicModule {
    const controllers: Type[] = [];
    if (compat.healthRoute) controllers.push(HealthController);
    if (compat.readyRoute) controllers.push(ReadyController);
    return {
      module: CompatModule,
      controllers,
      providers: compat.pusherSeries ? PUSHER_SERIES : [],
    };
  }
}

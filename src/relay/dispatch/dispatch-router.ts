import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';
import type { SidecarConfig } from '../../config/sidecar-config';
import { DispatchTable, Route } from './dispatch-table';

export const DISPATCH_METRICS = [
  makeCounterProvider({
    name: 'sidecar_dispatch_requests_total',
    help: 'Relayed requests by the dispatch rule that matched them (default: no rule matched), counted when matched, whatever the outcome.',
    labelNames: ['rule'],
  }),
];

/** The dispatch table of this sidecar, with one counter per route made up front. */
@Injectable()
export class DispatchRouter {
  readonly table: DispatchTable;
  private readonly counters: Counter.Internal[];

  constructor(config: ConfigService<SidecarConfig, true>, @InjectMetric('sidecar_dispatch_requests_total') requests: Counter<'rule'>) {
    this.table = new DispatchTable(config.get('dispatch', { infer: true }));
    this.counters = this.table.routes.map((r) => requests.labels(r.name));
    for (const c of this.counters) c.inc(0);
  }

  route(rawHeaders: readonly string[]): Route {
    const route = this.table.match(rawHeaders);
    this.counters[route.index].inc();
    return route;
  }
}

import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import type { Counter } from 'prom-client';
import { InjectSettings } from '../../config/settings';
import type { DispatchConfig } from '../../config/sidecar-config';
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

  constructor(
    @InjectSettings('dispatch') config: DispatchConfig,
    @InjectMetric('sidecar_dispatch_requests_total') requests: Counter<'rule'>,
  ) {
    this.table = new DispatchTable(config);
    this.counters = this.table.routes.map((r) => requests.labels(r.name));
    for (const c of this.counters) c.inc(0);
  }

  route(rawHeaders: readonly string[]): Route {
    const route = this.table.match(rawHeaders);
    this.counters[route.index].inc();
    return route;
  }
}

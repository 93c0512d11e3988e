import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';
import { InjectSettings } from '../config/settings';
import type { ConnectionsConfig } from '../config/sidecar-config';
import type { ConnectionsSnapshot } from './activity';

export const CONNECTIONS_METRICS = [
  makeGaugeProvider({
    name: 'sidecar_connections_active',
    help: 'ESTABLISHED TCP connections on a monitored local port, at the last read.',
    labelNames: ['port'],
  }),
  makeGaugeProvider({
    name: 'sidecar_connections_waiting',
    help: 'TIME_WAIT TCP sockets on a monitored local port, at the last read.',
    labelNames: ['port'],
  }),
  makeGaugeProvider({
    name: 'sidecar_connections_listening',
    help: '1 when a monitored local port was listened on at the last read, else 0.',
    labelNames: ['port'],
  }),
  makeGaugeProvider({
    name: 'sidecar_connections_tables_readable',
    help: '1 when the last read of /proc/net/tcp and tcp6 succeeded, else 0 (the per-port gauges then keep their last values).',
  }),
  makeCounterProvider({ name: 'sidecar_connections_read_failures_total', help: 'Reads of /proc/net/tcp or tcp6 that failed.' }),
  makeCounterProvider({
    name: 'sidecar_connections_unparsed_lines_total',
    help: 'Lines of /proc/net/tcp and tcp6 skipped because they could not be parsed, summed over reads.',
  }),
  makeCounterProvider({
    name: 'sidecar_connections_state_file_write_failures_total',
    help: 'Failed writes of the connections state file that wait-for-idle.sh reads.',
  }),
];

type PortGauges = { active: Gauge.Internal<'port'>; waiting: Gauge.Internal<'port'>; listening: Gauge.Internal<'port'> };

/** The connection monitor's metrics; the port label only takes the configured ports. */
@Injectable()
export class ConnectionsMetrics {
  private readonly perPort = new Map<number, PortGauges>();

  constructor(
    @InjectSettings('connections') config: ConnectionsConfig,
    @InjectMetric('sidecar_connections_active') active: Gauge<'port'>,
    @InjectMetric('sidecar_connections_waiting') waiting: Gauge<'port'>,
    @InjectMetric('sidecar_connections_listening') listening: Gauge<'port'>,
    @InjectMetric('sidecar_connections_tables_readable') private readonly readable: Gauge,
    @InjectMetric('sidecar_connections_read_failures_total') private readonly readFailures: Counter,
    @InjectMetric('sidecar_connections_unparsed_lines_total') private readonly unparsed: Counter,
    @InjectMetric('sidecar_connections_state_file_write_failures_total') private readonly writeFailures: Counter,
  ) {
    for (const port of config.ports) {
      const label = String(port);
      this.perPort.set(port, { active: active.labels(label), waiting: waiting.labels(label), listening: listening.labels(label) });
    }
    readFailures.inc(0);
    unparsed.inc(0);
    writeFailures.inc(0);
    readable.set(0);
  }

  observe(s: ConnectionsSnapshot): void {
    if (s.error !== null) {
      this.readFailures.inc();
      this.readable.set(0);
      return;
    }
    this.readable.set(1);
    if (s.skippedLines > 0) this.unparsed.inc(s.skippedLines);
    for (const p of s.ports) {
      const g = this.perPort.get(p.port);
      if (g === undefined) continue;
      g.active.set(p.active);
      g.waiting.set(p.waiting);
      g.listening.set(p.listening ? 1 : 0);
    }
  }

  stateFileWriteFailed(): void {
    this.writeFailures.inc();
  }
}

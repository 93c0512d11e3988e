import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyAdapter } from '@nestjs/platform-fastify';
import type { CompatConfig } from '../config/presets';
import { toAnswer } from '../connections/activity';
import { ConnectionsService } from '../connections/connections.service';

/** spawner-sidecar's answer at GET / of its serve port: these four fields, nothing else. */
export interface SpawnerAnswer {
  active_connections: number | null;
  waiting_connections: number | null;
  seconds_since_active: number | null;
  listening: boolean | null;
}

const pathOf = (url: string) => {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
};

/**
 * Answers that a preset puts ahead of the management port's routing, so that they hold
 * whatever other modules route: spawner-sidecar's `GET /`, and signal-sidecar's METRICS=false
 * (no /metrics). Installed on the Fastify instance before Nest registers any route.
 */
export function installCompatHooks(adapter: FastifyAdapter, compat: CompatConfig, app: () => NestFastifyApplication): void {
  const fastify = adapter.getInstance();
  if (!compat.metricsServed) {
    fastify.addHook('onRequest', async (req, reply) => {
      if (pathOf(req.url) !== '/metrics') return;
      await reply.code(404).send({ error: 'not_found', message: 'metrics are not published (METRICS=false)' });
      return reply;
    });
  }
  if (compat.spawnerRoot) {
    fastify.addHook('onRequest', async (req, reply) => {
      if (pathOf(req.url) !== '/' || (req.method !== 'GET' && req.method !== 'HEAD')) return;
      const snapshot = await app().get(ConnectionsService).refresh();
      const a = toAnswer(snapshot, Date.now());
      // spawner's clock counts from the last busy moment, so it is 0 while busy: always a number
      // for its consumers (/connections says null there instead).
      const sinceActive = snapshot.error === null ? (a.seconds_since_active ?? 0) : null;
      const body: SpawnerAnswer = {
        active_connections: a.active_connections,
        waiting_connections: a.waiting_connections,
        seconds_since_active: sinceActive,
        listening: a.listening,
      };
      // As /connections: a failed read is 503 (with null counts), never a "0" that reads as idle.
      await reply.code(snapshot.error === null ? 200 : 503).send(body);
      return reply;
    });
  }
}

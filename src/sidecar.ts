import { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { AgentServer } from './agent/agent-server';
import { AppModule } from './app.module';
import { installCompatHooks } from './compat/compat-hooks';
import type { SidecarConfig } from './config/sidecar-config';
import { RelayServer } from './relay/relay-server';

export interface Sidecar {
  /** The Nest application; it serves the management port. */
  app: NestFastifyApplication;
  relayPort: number | null;
  /** null when the management port is not opened (the http-dispatcher preset). */
  managementPort: number | null;
  /** The HAProxy agent's port, null when AGENT_PORT is not set. */
  agentPort: number | null;
  /** Graceful stop: stop accepting, let in-flight work finish (bounded), flush, close. */
  close(): Promise<void>;
}

/**
 * Builds and starts the sidecar. One start-up convention, Nest's lifecycle: in
 * `onModuleInit` each feature puts in place what must exist before anything is served (the
 * spool recovered, Redis tried, the probe scripts and the connections state file written)
 * and the relay binds its port last, its modules being initialised before it; in
 * `onApplicationBootstrap` the work that talks to peers starts (the health check, the
 * spool's delivery, remote write, the agent's first round and only then its port: HAProxy
 * keeps a server's state while its agent cannot be reached, rather than see it down for a
 * moment). The management port opens once all of that is done. Shared by main.ts and tests.
 */
export async function startSidecar(config: SidecarConfig, logger: LoggerService | false = false): Promise<Sidecar> {
  const adapter = new FastifyAdapter();
  // Before any route exists, so that they answer ahead of routing (GET / of other modules included).
  installCompatHooks(adapter, config.compat, () => app);
  const app: NestFastifyApplication = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    logger,
    abortOnError: false,
  });
  try {
    await app.init();
    if (config.server.managementPort !== null) await app.listen(config.server.managementPort, config.server.listenHost);
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
  const relayPort = config.relay ? app.get(RelayServer).port : null;
  const address = config.server.managementPort === null ? null : app.getHttpServer().address();
  const managementPort = typeof address === 'object' && address ? address.port : config.server.managementPort;
  const agentPort = config.agent ? app.get(AgentServer).port : null;
  return { app, relayPort, managementPort, agentPort, close: () => app.close() };
}

import { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { AgentServer } from './agent/agent-server';
import { AgentService } from './agent/agent.service';
import { AppModule } from './app.module';
import { installCompatHooks } from './compat/compat-hooks';
import type { SidecarConfig } from './config/sidecar-config';
import { ConnectionsService } from './connections/connections.service';
import { HealthCheckService } from './health-check/health-check.service';
import { RelayServer } from './relay/relay-server';
import { StatusFile } from './status-file/status-file';

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
 * Builds and starts the sidecar: every module initialised, the probe scripts and the
 * connections state in place, relay and management listeners bound, the first health
 * check started, the agent's first round done and only then its port bound (HAProxy keeps
 * a server's state while its agent cannot be reached, rather than see it down for a
 * moment). Shared by main.ts and tests.
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
    const healthCheck = config.healthCheck ? app.get(HealthCheckService) : null;
    if (healthCheck) await app.get(StatusFile).installProbes();
    // First read and state file before "ready": a preStop right after start-up finds them.
    if (config.connections) await app.get(ConnectionsService).start();
    const relay = config.relay ? app.get(RelayServer) : null;
    await relay?.listen();
    if (config.server.managementPort !== null) await app.listen(config.server.managementPort, config.server.listenHost);
    healthCheck?.start();
    if (config.agent) {
      await app.get(AgentService).start();
      await app.get(AgentServer).listen();
    }
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

import { LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import type { SidecarConfig } from './config/sidecar-config';
import { ConnectionsService } from './connections/connections.service';
import { HealthCheckService } from './health-check/health-check.service';
import { RelayServer } from './relay/relay-server';
import { StatusFile } from './status-file/status-file';

export interface Sidecar {
  /** The Nest application; it serves the management port. */
  app: NestFastifyApplication;
  relayPort: number | null;
  managementPort: number;
  /** Graceful stop: stop accepting, let in-flight work finish (bounded), flush, close. */
  close(): Promise<void>;
}

/**
 * Builds and starts the sidecar: every module initialised, the probe scripts and the
 * connections state in place, both listeners bound, then the first health check started.
 * Shared by main.ts and tests.
 */
export async function startSidecar(config: SidecarConfig, logger: LoggerService | false = false): Promise<Sidecar> {
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), new FastifyAdapter(), {
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
    await app.listen(config.server.managementPort, config.server.listenHost);
    healthCheck?.start();
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
  const relayPort = config.relay ? app.get(RelayServer).port : null;
  const address = app.getHttpServer().address();
  const managementPort = typeof address === 'object' && address ? address.port : config.server.managementPort;
  return { app, relayPort, managementPort, close: () => app.close() };
}


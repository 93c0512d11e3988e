import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ConnectionsAnswer, toAnswer } from './activity';
import { ConnectionsService } from './connections.service';

/** GET /connections on the management port: spawner-sidecar's answer, read fresh for each request. */
@Controller('connections')
export class ConnectionsController {
  constructor(private readonly connections: ConnectionsService) {}

  @Get()
  async current(@Res({ passthrough: true }) reply: FastifyReply): Promise<ConnectionsAnswer> {
    const snapshot = await this.connections.refresh();
    // 503 with the reason: a caller deciding whether the pod may go must not take a failure for "idle".
    if (snapshot.error !== null) reply.status(HttpStatus.SERVICE_UNAVAILABLE);
    return toAnswer(snapshot, Date.now());
  }
}

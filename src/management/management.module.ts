import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { AdminGuard } from './admin.guard';
import { ProbesController } from './probes.controller';
import { StatusController } from './status.controller';

/**
 * Routes of the management port besides /metrics: probes and the status summary; and
 * the port's access rules, applied to every route on it (AdminGuard, app-wide).
 */
@Module({
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [ProbesController, StatusController],
  providers: [{ provide: APP_GUARD, useClass: AdminGuard }],
})
export class ManagementModule {}

import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ProbesController } from './probes.controller';
import { StatusController } from './status.controller';

/** Routes of the management port besides /metrics: probes and the status summary. */
@Module({ imports: [TerminusModule.forRoot({ logger: false })], controllers: [ProbesController, StatusController] })
export class ManagementModule {}

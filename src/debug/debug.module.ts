import { Module } from '@nestjs/common';
import { DebugController } from './debug.controller';
import { Profiler } from './profiler';

@Module({ providers: [Profiler], controllers: [DebugController] })
export class DebugModule {}

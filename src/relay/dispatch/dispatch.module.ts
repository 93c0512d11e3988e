import { Global, Module } from '@nestjs/common';
import { DISPATCH_METRICS, DispatchRouter } from './dispatch-router';

/** Header-keyed routing for the relay; imported only when the config file has dispatch rules. */
@Global()
@Module({ providers: [DispatchRouter, ...DISPATCH_METRICS], exports: [DispatchRouter] })
export class DispatchModule {}

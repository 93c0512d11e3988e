import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Session, type Profiler as InspectorProfiler } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { getHeapSnapshot } from 'node:v8';

export const MAX_PROFILE_SECONDS = 60;

/** Raised when a profile or snapshot is asked for while another one runs. */
export class ProfilerBusyError extends Error {}

/**
 * In-process diagnostics over the inspector protocol: CPU profiles (.cpuprofile, opened by
 * Chrome DevTools and speedscope), heap snapshots, and event-loop figures. One capture at
 * a time: each one costs CPU and memory of the very process it looks at.
 */
@Injectable()
export class Profiler implements OnModuleInit, OnModuleDestroy {
  private busy = false;
  private loopDelay: ReturnType<typeof monitorEventLoopDelay> | null = null;
  private lastElu = performance.eventLoopUtilization();

  onModuleInit(): void {
    this.loopDelay = monitorEventLoopDelay({ resolution: 20 });
    this.loopDelay.enable();
  }

  onModuleDestroy(): void {
    this.loopDelay?.disable();
  }

  async cpuProfile(seconds: number): Promise<InspectorProfiler.Profile> {
    return this.exclusive(async () => {
      const session = new Session();
      session.connect();
      try {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        await new Promise((r) => setTimeout(r, seconds * 1000));
        const { profile } = await session.post('Profiler.stop');
        return profile;
      } finally {
        session.disconnect();
      }
    });
  }

  /** A V8 heap snapshot as a stream; the lock is held until the stream ends. */
  heapSnapshot(): Readable {
    if (this.busy) throw new ProfilerBusyError('a profile or heap snapshot is already being taken');
    this.busy = true;
    const stream = getHeapSnapshot();
    stream.once('close', () => (this.busy = false));
    return stream;
  }

  runtime() {
    const elu = performance.eventLoopUtilization(this.lastElu);
    this.lastElu = performance.eventLoopUtilization();
    const d = this.loopDelay;
    const ms = (ns: number) => Math.round((ns / 1e6) * 100) / 100;
    const resources: Record<string, number> = {};
    for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
    return {
      uptimeSeconds: Math.round(process.uptime()),
      eventLoop: {
        utilizationSinceLastCall: Math.round(elu.utilization * 1000) / 1000,
        delayMs: d ? { min: ms(d.min), mean: ms(d.mean), p50: ms(d.percentile(50)), p99: ms(d.percentile(99)), max: ms(d.max) } : null,
      },
      activeResources: resources,
      memory: process.memoryUsage(),
    };
  }

  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy) throw new ProfilerBusyError('a profile or heap snapshot is already being taken');
    this.busy = true;
    try {
      return await work();
    } finally {
      this.busy = false;
    }
  }
}

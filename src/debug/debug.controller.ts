import { Controller, Get, HttpException, HttpStatus, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { cpuProfileToPprof } from './cpu-profile-to-pprof';
import { MAX_PROFILE_SECONDS, Profiler, ProfilerBusyError } from './profiler';

const gzipAsync = promisify(gzip);
const PROFILE_FORMATS = ['cpuprofile', 'pprof'] as const;

/** /debug/* on the management port, only with ENABLE_PPROF=true (the module is not loaded otherwise). */
@Controller('debug')
export class DebugController {
  constructor(private readonly profiler: Profiler) {}

  @Get('pprof/profile')
  async profile(
    @Query('seconds') seconds: string | undefined,
    @Query('format') format: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const n = seconds === undefined ? 10 : Number(seconds);
    if (!Number.isFinite(n) || n <= 0 || n > MAX_PROFILE_SECONDS) {
      throw new HttpException(
        { error: 'bad_request', message: `seconds must be a number above 0 and at most ${MAX_PROFILE_SECONDS}` },
        HttpStatus.BAD_REQUEST,
      );
    }
    const f = format ?? 'cpuprofile';
    if (!(PROFILE_FORMATS as readonly string[]).includes(f)) {
      throw new HttpException(
        { error: 'bad_request', message: `format must be one of ${PROFILE_FORMATS.join(', ')}` },
        HttpStatus.BAD_REQUEST,
      );
    }
    const profile = await this.guard(() => this.profiler.cpuProfile(n));
    if (f === 'pprof') {
      // V8 times the profile on the monotonic clock that process.hrtime reads; pprof wants the epoch.
      const epochOffsetMicros = Date.now() * 1000 - Number(process.hrtime.bigint() / 1000n);
      const body = await gzipAsync(cpuProfileToPprof(profile, { epochOffsetMicros }));
      await reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename="pod-sidecar-${Date.now()}.pb.gz"`)
        .send(body);
      return;
    }
    await reply
      .header('content-type', 'application/json')
      .header('content-disposition', `attachment; filename="pod-sidecar-${Date.now()}.cpuprofile"`)
      .send(JSON.stringify(profile));
  }

  @Get('pprof/heap')
  async heap(@Res() reply: FastifyReply): Promise<void> {
    const stream = await this.guard(() => this.profiler.heapSnapshot());
    await reply
      .header('content-type', 'application/json')
      .header('content-disposition', `attachment; filename="pod-sidecar-${Date.now()}.heapsnapshot"`)
      .send(stream);
  }

  @Get('runtime')
  runtime() {
    return this.profiler.runtime();
  }

  private async guard<T>(work: () => T | Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (e instanceof ProfilerBusyError) throw new HttpException({ error: 'busy', message: e.message }, HttpStatus.CONFLICT);
      throw e;
    }
  }
}

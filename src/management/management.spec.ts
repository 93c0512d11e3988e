import { Controller, DynamicModule, Injectable, Module, Post, ServiceUnavailableException, type Type } from '@nestjs/common';
import { HealthIndicatorService, TerminusModule } from '@nestjs/terminus';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test, type TestingModule } from '@nestjs/testing';
import type { SidecarConfig } from '../config/sidecar-config';
import type { FeatureModule, FeaturePart } from './feature-part';
import { ManagementModule } from './management.module';
import { ProbesController } from './probes.controller';
import { StatusController } from './status.controller';

/**
 * ManagementModule.forRoot with fake features, as the composition root builds it: /status
 * is made of the parts, /healthz and /readyz of their checks.
 */

/** What the fakes report, changed by the tests between calls (the controllers ask afresh each time). */
const state = { connectionsListening: true, agentPortListening: true, loopAlive: true, spoolEvents: 3 };

/** Has liveness, no readiness, an async status. */
@Injectable()
class FakeHealthCheckPart implements FeaturePart {
  readonly key = 'healthCheck';
  readonly feature = true;
  constructor(private readonly indicator: HealthIndicatorService) {}
  async status() {
    await Promise.resolve();
    return { loopAlive: state.loopAlive };
  }
  liveness() {
    const key = this.indicator.check('healthCheckLoop');
    return [state.loopAlive ? key.up() : key.down('no health check started for two intervals')];
  }
}

/** Has readiness (two checks), no liveness, a non-boolean feature value. */
@Injectable()
class FakeConnectionsPart implements FeaturePart {
  readonly key = 'connections';
  readonly feature = [8080, 9090];
  constructor(private readonly indicator: HealthIndicatorService) {}
  status() {
    return { active_connections: 2 };
  }
  readiness() {
    return [
      state.connectionsListening
        ? this.indicator.check('connections').up({ ports: this.feature })
        : this.indicator.check('connections').down('not listening'),
      this.indicator.check('connectionsFile').up(),
    ];
  }
}

/** Neither liveness nor readiness; not listed in `features` (like the spool). */
@Injectable()
class FakeSpoolPart implements FeaturePart {
  readonly key = 'spool';
  status() {
    return { events: state.spoolEvents };
  }
}

/** Has readiness, and a status that is null (nothing to show yet). */
@Injectable()
class FakeAgentPart implements FeaturePart {
  readonly key = 'agent';
  readonly feature = true;
  constructor(private readonly indicator: HealthIndicatorService) {}
  status() {
    return null;
  }
  readiness() {
    const key = this.indicator.check('agent');
    return [state.agentPortListening ? key.up({ port: 1234 }) : key.down('agent port is not listening')];
  }
}

/** A feature's own write route on the management port (as the spool's requeue is). */
@Controller('spool')
class FakeSpoolController {
  static requeued = 0;
  @Post('requeue')
  requeue() {
    return { requeued: ++FakeSpoolController.requeued };
  }
}

/** A feature module as the real ones are: a dynamic module that provides and exports its part. */
function feature(part: FeatureModule['part'], controllers: Type[] = []): FeatureModule {
  @Module({})
  class FakeFeatureModule {}
  const module: DynamicModule = { module: FakeFeatureModule, imports: [TerminusModule], controllers, providers: [part], exports: [part] };
  return { module, part };
}

async function build(features: FeatureModule[], debug = false): Promise<TestingModule> {
  return Test.createTestingModule({
    imports: [ManagementModule.forRoot({ debug: { enabled: debug }, management: { tokenFile: null } } as SidecarConfig, features)],
  }).compile();
}

/** The body terminus puts in the 503 it throws. */
async function rejection(p: Promise<unknown>): Promise<Record<string, unknown>> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ServiceUnavailableException);
  expect((e as ServiceUnavailableException).getStatus()).toBe(503);
  return (e as ServiceUnavailableException).getResponse() as Record<string, unknown>;
}

describe('ManagementModule', () => {
  let moduleRef: TestingModule;
  afterEach(async () => {
    await moduleRef?.close();
    Object.assign(state, { connectionsListening: true, agentPortListening: true, loopAlive: true, spoolEvents: 3 });
  });

  describe('/status', () => {
    it("lists each feature's value, the off-value of absent ones, and each part under its key", async () => {
      moduleRef = await build([feature(FakeSpoolPart), feature(FakeHealthCheckPart), feature(FakeConnectionsPart)]);
      const body = await moduleRef.get(StatusController).status();

      expect(body.features).toEqual({
        relay: null,
        dispatch: false,
        healthCheck: true,
        agent: false,
        debug: false,
        connections: [8080, 9090],
        remoteWrite: false,
        webhookAuth: false,
        coordination: false,
      });
      // The spool has no `feature`: it is not a key of `features` of its own.
      expect(Object.keys(body.features as object)).not.toContain('spool');
      expect(body).toMatchObject({
        spool: { events: 3 },
        healthCheck: { loopAlive: true },
        connections: { active_connections: 2 },
        relay: null,
        dispatch: null,
        coordination: null,
        webhookAuth: null,
        remoteWrite: null,
        agent: null,
      });
      expect(Date.parse(body.time as string)).not.toBeNaN();
      expect(Date.parse(body.startedAt as string)).toBeLessThanOrEqual(Date.parse(body.time as string));
    });

    it('asks the parts again on each request', async () => {
      moduleRef = await build([feature(FakeSpoolPart)]);
      const status = moduleRef.get(StatusController);
      expect((await status.status()).spool).toEqual({ events: 3 });
      state.spoolEvents = 7;
      expect((await status.status()).spool).toEqual({ events: 7 });
    });

    it("shows debug from the configuration, and a part's null status as null", async () => {
      moduleRef = await build([feature(FakeAgentPart)], true);
      const body = await moduleRef.get(StatusController).status();
      expect(body.features).toMatchObject({ debug: true, agent: true, healthCheck: false });
      expect(body.agent).toBeNull();
    });

    it('has every feature off and every part null without features', async () => {
      moduleRef = await build([]);
      const body = await moduleRef.get(StatusController).status();
      // The relay's mode and the monitored ports are values when on: off, they are null; the others are switches.
      expect(body.features).toEqual({
        relay: null,
        dispatch: false,
        healthCheck: false,
        agent: false,
        debug: false,
        connections: null,
        remoteWrite: false,
        webhookAuth: false,
        coordination: false,
      });
      for (const key of ['relay', 'dispatch', 'spool', 'coordination', 'webhookAuth', 'healthCheck', 'connections', 'remoteWrite', 'agent'])
        expect([key, body[key]]).toEqual([key, null]);
    });
  });

  describe('/readyz', () => {
    it("is ok with every part's readiness checks when they are up, and ignores liveness", async () => {
      moduleRef = await build([feature(FakeHealthCheckPart), feature(FakeConnectionsPart), feature(FakeAgentPart)]);
      state.loopAlive = false; // a liveness check: not part of readiness
      const result = await moduleRef.get(ProbesController).readiness();
      expect(result.status).toBe('ok');
      expect(Object.keys(result.details).sort()).toEqual(['agent', 'connections', 'connectionsFile']);
      expect(result.details.agent).toEqual({ status: 'up', port: 1234 });
    });

    it('answers 503 naming the part that is down, with the others still in the details', async () => {
      moduleRef = await build([feature(FakeConnectionsPart), feature(FakeAgentPart)]);
      const probes = moduleRef.get(ProbesController);
      state.agentPortListening = false;
      const body = await rejection(probes.readiness());
      expect(body.status).toBe('error');
      expect(body.error).toEqual({ agent: { status: 'down', message: 'agent port is not listening' } });
      expect(Object.keys(body.details as object).sort()).toEqual(['agent', 'connections', 'connectionsFile']);

      state.agentPortListening = true;
      expect((await probes.readiness()).status).toBe('ok');
    });

    it('is ok with no checks at all (no feature has readiness)', async () => {
      moduleRef = await build([feature(FakeSpoolPart)]);
      const result = await moduleRef.get(ProbesController).readiness();
      expect(result).toMatchObject({ status: 'ok', details: {} });
    });
  });

  describe('/healthz', () => {
    it("includes the process and each part's liveness checks, and not readiness", async () => {
      moduleRef = await build([feature(FakeHealthCheckPart), feature(FakeConnectionsPart)]);
      state.connectionsListening = false; // a readiness check: not part of liveness
      const result = await moduleRef.get(ProbesController).liveness();
      expect(result.status).toBe('ok');
      expect(Object.keys(result.details).sort()).toEqual(['healthCheckLoop', 'process']);
      expect(result.details.process).toEqual({ status: 'up', uptimeSeconds: expect.any(Number) });
    });

    it('answers 503 when a liveness check is down', async () => {
      moduleRef = await build([feature(FakeHealthCheckPart)]);
      state.loopAlive = false;
      const body = await rejection(moduleRef.get(ProbesController).liveness());
      expect(body.error).toEqual({ healthCheckLoop: { status: 'down', message: 'no health check started for two intervals' } });
      expect(body.info).toMatchObject({ process: { status: 'up' } });
    });
  });

  describe('over HTTP (FastifyAdapter)', () => {
    let app: NestFastifyApplication | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    it('answers the probes 200 and 503 with the terminus body, and /status, to any caller', async () => {
      moduleRef = await build([feature(FakeHealthCheckPart), feature(FakeAgentPart)]);
      app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
      await app.init();
      await app.getHttpAdapter().getInstance().ready();
      const get = (url: string) => app!.inject({ method: 'GET', url, remoteAddress: '10.1.2.3' });

      expect((await get('/readyz')).statusCode).toBe(200);
      state.agentPortListening = false;
      const down = await get('/readyz');
      expect(down.statusCode).toBe(503);
      expect(down.json()).toMatchObject({ status: 'error', error: { agent: { status: 'down' } } });
      expect((await get('/healthz')).json()).toMatchObject({
        status: 'ok',
        info: { process: { status: 'up' }, healthCheckLoop: { status: 'up' } },
      });

      const status = await get('/status');
      expect(status.statusCode).toBe(200);
      expect(status.json()).toMatchObject({ features: { healthCheck: true, agent: true }, healthCheck: { loopAlive: true }, agent: null });
    });

    it("lets the app-wide AdminGuard refuse a feature's write route to a caller off loopback, and allow it on loopback", async () => {
      moduleRef = await build([feature(FakeSpoolPart, [FakeSpoolController])]);
      app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
      await app.init();
      await app.getHttpAdapter().getInstance().ready();
      const before = FakeSpoolController.requeued;
      const refused = await app.inject({ method: 'POST', url: '/spool/requeue', remoteAddress: '10.1.2.3' });
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ error: 'forbidden' });
      expect(FakeSpoolController.requeued).toBe(before);

      const allowed = await app.inject({ method: 'POST', url: '/spool/requeue', remoteAddress: '127.0.0.1' });
      expect(allowed.statusCode).toBe(201);
      expect(allowed.json()).toEqual({ requeued: before + 1 });
    });
  });
});

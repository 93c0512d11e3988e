import { Test, type TestingModule } from '@nestjs/testing';
import { register } from 'prom-client';
import { loadConfig } from '../../config/load-config';
import { DispatchRouter } from './dispatch-router';
import { DispatchModule } from './dispatch.module';
import { DispatchStatus } from './dispatch.status';

/** DispatchRouter and DispatchStatus as DispatchModule builds them from a SIDECAR_CONFIG dispatch section. */

const YAML = `dispatch:
  header: X-Environment
  default: http://base.test:3000/hook
  rules:
    dev:
      destination: http://dev.test:4000/d?key=s3cr3t
      patch:
        - set: { X-Dispatched: "true" }
    staging:
      name: stage
      destination: https://staging.test/
      keepHost: true
    qa: {}
`;

async function requestsBy(rule: string): Promise<number | undefined> {
  const { values } = await register.getSingleMetric('sidecar_dispatch_requests_total')!.get();
  return values.find((v) => v.labels.rule === rule)?.value;
}

describe('DispatchRouter', () => {
  let moduleRef: TestingModule;
  let router: DispatchRouter;

  beforeEach(async () => {
    const loaded = loadConfig({ SHARED_VOLUME_PATH: '/tmp', SIDECAR_CONFIG: 'sidecar.yaml' }, () => YAML);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    moduleRef = await Test.createTestingModule({ imports: [DispatchModule.forRoot(loaded.config)] }).compile();
    router = moduleRef.get(DispatchRouter);
  });
  afterEach(async () => {
    await moduleRef.close();
    register.clear();
  });

  it('has a series at 0 for the default route and every rule, by rule name, before any request', async () => {
    for (const rule of ['default', 'dev', 'stage', 'qa']) expect([rule, await requestsBy(rule)]).toEqual([rule, 0]);
    expect(await requestsBy('staging')).toBeUndefined();
  });

  it("routes by the key header's value and counts the request under the matched rule only", async () => {
    const dev = router.route(['Host', 'relay', 'x-environment', 'dev']);
    expect(dev).toMatchObject({ name: 'dev', destination: { host: 'dev.test:4000', search: '?key=s3cr3t' }, keepHost: false });
    expect(dev.patches).toEqual([{ name: 'X-Dispatched', lowerName: 'x-dispatched', value: 'true' }]);
    expect(router.route(['X-Environment', 'staging'])).toMatchObject({
      name: 'stage',
      keepHost: true,
      destination: { host: 'staging.test' },
    });
    router.route(['X-Environment', 'dev']);
    // A rule without a destination of its own goes to the default one.
    expect(router.route(['X-Environment', 'qa']).destination).toMatchObject({ host: 'base.test:3000', pathname: '/hook' });

    expect(await requestsBy('dev')).toBe(2);
    expect(await requestsBy('stage')).toBe(1);
    expect(await requestsBy('qa')).toBe(1);
    expect(await requestsBy('default')).toBe(0);
  });

  it('counts requests without the header, or with a value no rule has, under default', async () => {
    expect(router.route([]).name).toBe('default');
    expect(router.route(['X-Environment', 'prod']).name).toBe('default');
    expect(router.route(['X-Environment', 'DEV']).destination).toMatchObject({ host: 'base.test:3000' });
    expect(await requestsBy('default')).toBe(3);
    expect(await requestsBy('dev')).toBe(0);
  });

  it("shows in /status the header and the rules' names, never their destinations", () => {
    const status = moduleRef.get(DispatchStatus);
    expect(status.key).toBe('dispatch');
    expect(status.status()).toEqual({ header: 'X-Environment', rules: ['dev', 'stage', 'qa'], hasDefault: true });
    expect(JSON.stringify(status.status())).not.toContain('s3cr3t');
  });
});

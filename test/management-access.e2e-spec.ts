import { LoggerService } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import request from 'supertest';
import { startSidecar, type Sidecar } from '../src/sidecar';
import { RecordingServer } from './support/recording-server';
import { testConfig } from './support/sidecar';

/** Every line the sidecar logs, as text, to check that no token ever shows. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log = (...a: unknown[]) => void this.lines.push(JSON.stringify(a));
  error = this.log;
  warn = this.log;
  debug = this.log;
  verbose = this.log;
}

const TOKEN = 'mgmt-token-0123456789abcdef';
const ROTATED = 'mgmt-token-rotated-fedcba9876';
const EVENT = '0b7e1a0e-6f6a-4c49-9b8b-1d1b7d7b7d7b';

/** The Fastify instance behind the management port, to send requests "from" another address. */
function inject(
  sidecar: Sidecar,
  opts: { method: 'GET' | 'POST' | 'DELETE'; url: string; remoteAddress: string; headers?: Record<string, string> },
) {
  return sidecar.app.getHttpAdapter().getInstance().inject(opts);
}

describe('management plane access', () => {
  const downstream = new RecordingServer();
  let dir: string;
  beforeAll(async () => {
    await downstream.listen();
    dir = mkdtempSync(join(tmpdir(), 'management-access-'));
  });
  afterAll(async () => {
    await downstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('with MANAGEMENT_TOKEN_FILE', () => {
    let sidecar: Sidecar;
    let url: string;
    const logger = new CapturingLogger();
    const tokenFile = () => join(dir, 'token');

    beforeAll(async () => {
      writeFileSync(tokenFile(), `${TOKEN}\n`);
      register.clear();
      const config = testConfig({
        DOWNSTREAM_SERVICE_URL: downstream.url,
        RELAY_MODE: 'spool',
        ENABLE_PPROF: 'true',
        MANAGEMENT_TOKEN_FILE: tokenFile(),
      });
      sidecar = await startSidecar(config, logger);
      url = `http://127.0.0.1:${sidecar.managementPort}`;
    });
    afterAll(() => sidecar.close());

    it('keeps probes, metrics, status and the read-only reports open to anyone', async () => {
      for (const path of ['/healthz', '/readyz', '/metrics', '/status', '/spool', '/spool/dead-letters']) {
        expect([path, (await request(url).get(path)).status]).toEqual([path, 200]);
        expect([path, (await inject(sidecar, { method: 'GET', url: path, remoteAddress: '10.1.2.3' })).statusCode]).toEqual([path, 200]);
      }
    });

    it('answers 401 with a JSON body to a loopback caller without the token or with a wrong one', async () => {
      const writes = [
        request(url).post('/spool/dead-letters/requeue'),
        request(url).post(`/spool/dead-letters/${EVENT}/requeue`).set('Authorization', 'Bearer not-the-token-at-all'),
        request(url)
          .delete(`/spool/dead-letters/${EVENT}`)
          .set('Authorization', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`),
        request(url).get('/debug/runtime').set('Authorization', `Bearer ${TOKEN}x`),
        request(url).get('/debug/pprof/heap'),
      ];
      for (const res of await Promise.all(writes)) {
        expect(res.status).toBe(401);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
        expect(res.body).toMatchObject({ error: 'unauthorized', message: expect.any(String) });
      }
    });

    it('lets the token through, from loopback and from elsewhere', async () => {
      const auth = { authorization: `Bearer ${TOKEN}` };
      expect((await request(url).post('/spool/dead-letters/requeue').set(auth)).body).toMatchObject({ requeued: 0 });
      expect((await request(url).delete(`/spool/dead-letters/${EVENT}`).set(auth)).status).toBe(404);
      expect((await request(url).get('/debug/runtime').set(auth)).status).toBe(200);
      expect(
        (await inject(sidecar, { method: 'POST', url: '/spool/dead-letters/requeue', remoteAddress: '10.1.2.3', headers: auth }))
          .statusCode,
      ).toBe(200);
      expect((await inject(sidecar, { method: 'POST', url: '/spool/dead-letters/requeue', remoteAddress: '10.1.2.3' })).statusCode).toBe(
        401,
      );
    });

    it('takes a rotated token without a restart, and the old one no longer works', async () => {
      writeFileSync(tokenFile(), `${ROTATED}\n`);
      expect((await request(url).post('/spool/dead-letters/requeue').set('Authorization', `Bearer ${TOKEN}`)).status).toBe(401);
      expect((await request(url).post('/spool/dead-letters/requeue').set('Authorization', `Bearer ${ROTATED}`)).status).toBe(200);
    });

    it('logs each refusal without any token', () => {
      const text = logger.lines.join('\n');
      expect(text).toContain('management request refused');
      for (const secret of [TOKEN, ROTATED, 'not-the-token-at-all']) expect(text).not.toContain(secret);
    });
  });

  describe('without MANAGEMENT_TOKEN_FILE', () => {
    let sidecar: Sidecar;
    beforeAll(async () => {
      register.clear();
      sidecar = await startSidecar(testConfig({ DOWNSTREAM_SERVICE_URL: downstream.url, RELAY_MODE: 'spool', ENABLE_PPROF: 'true' }));
    });
    afterAll(() => sidecar.close());

    it('answers writes and /debug/* from loopback (port-forward, exec), IPv4-mapped included', async () => {
      const url = `http://127.0.0.1:${sidecar.managementPort}`;
      expect((await request(url).post('/spool/dead-letters/requeue')).status).toBe(200);
      expect((await request(url).get('/debug/runtime')).status).toBe(200);
      for (const remoteAddress of ['::1', '::ffff:127.0.0.1']) {
        expect((await inject(sidecar, { method: 'POST', url: '/spool/dead-letters/requeue', remoteAddress })).statusCode).toBe(200);
      }
    });

    it('answers 403 with a JSON body to any other caller, and still serves it probes and reads', async () => {
      for (const remoteAddress of ['10.1.2.3', '::ffff:10.1.2.3', 'fd00::5']) {
        for (const [method, path] of [
          ['POST', '/spool/dead-letters/requeue'],
          ['DELETE', `/spool/dead-letters/${EVENT}`],
          ['GET', '/debug/pprof/heap'],
        ] as const) {
          const res = await inject(sidecar, { method, url: path, remoteAddress });
          expect([remoteAddress, method, path, res.statusCode]).toEqual([remoteAddress, method, path, 403]);
          expect(res.json()).toMatchObject({ error: 'forbidden' });
        }
        expect((await inject(sidecar, { method: 'GET', url: '/readyz', remoteAddress })).statusCode).toBe(200);
      }
    });
  });

  it('refuses to start with an unusable token file, naming the file and not its content', () => {
    const file = join(dir, 'short');
    writeFileSync(file, 'tiny-secret');
    expect(() => testConfig({ DOWNSTREAM_SERVICE_URL: downstream.url, MANAGEMENT_TOKEN_FILE: file })).toThrow(
      /MANAGEMENT_TOKEN_FILE=".*short": the token is shorter than 16 characters/,
    );
    expect(() => testConfig({ DOWNSTREAM_SERVICE_URL: downstream.url, MANAGEMENT_TOKEN_FILE: join(dir, 'absent') })).toThrow(
      /MANAGEMENT_TOKEN_FILE=".*absent": cannot read it/,
    );
  });
});

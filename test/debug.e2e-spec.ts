import request from 'supertest';
import { RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';

type Started = Awaited<ReturnType<typeof start>>;

describe('debug endpoints', () => {
  const downstream = new RecordingServer();
  beforeAll(() => downstream.listen());
  afterAll(() => downstream.close());

  describe('off by default', () => {
    let s: Started;
    beforeAll(async () => (s = await start({ DOWNSTREAM_SERVICE_URL: downstream.url })));
    afterAll(() => s.close());

    it.each(['/debug/pprof/profile?seconds=1', '/debug/pprof/heap', '/debug/runtime'])('%s is 404 on the management port', async (path) => {
      expect((await request(s.managementUrl).get(path)).status).toBe(404);
    });
  });

  describe('with ENABLE_PPROF=true', () => {
    let s: Started;
    beforeAll(async () => (s = await start({ DOWNSTREAM_SERVICE_URL: downstream.url, ENABLE_PPROF: 'true' })));
    afterAll(() => s.close());

    it('gives a CPU profile that DevTools can open (nodes, samples, time deltas)', async () => {
      const res = await request(s.managementUrl).get('/debug/pprof/profile?seconds=0.3').buffer(true).parse((r, cb) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c));
        r.on('end', () => cb(null, text));
      });
      expect(res.status).toBe(200);
      expect(res.headers['content-disposition']).toMatch(/\.cpuprofile"$/);
      const profile = JSON.parse(res.body as string);
      expect(Array.isArray(profile.nodes)).toBe(true);
      expect(profile.nodes[0].callFrame).toBeDefined();
      expect(typeof profile.startTime).toBe('number');
      expect(profile.endTime).toBeGreaterThan(profile.startTime);
    });

    it('takes one profile at a time and caps the duration', async () => {
      const first = request(s.managementUrl).get('/debug/pprof/profile?seconds=0.5').then((r) => r.status);
      await new Promise((r) => setTimeout(r, 100));
      const second = await request(s.managementUrl).get('/debug/pprof/profile?seconds=0.1');
      expect(second.status).toBe(409);
      expect(await first).toBe(200);
      const tooLong = await request(s.managementUrl).get('/debug/pprof/profile?seconds=3600');
      expect(tooLong.status).toBe(400);
      expect(tooLong.body.message).toContain('at most 60');
    });

    it('streams a heap snapshot', async () => {
      const res = await request(s.managementUrl).get('/debug/pprof/heap').buffer(true).parse((r, cb) => {
        let size = 0;
        let head = '';
        r.on('data', (c: Buffer) => {
          if (head.length < 100) head += c.toString();
          size += c.length;
        });
        r.on('end', () => cb(null, { size, head }));
      });
      expect(res.status).toBe(200);
      expect(res.body.head).toMatch(/^\{"snapshot":/);
      expect(res.body.size).toBeGreaterThan(100_000);
    });

    it('reports event-loop delay and utilisation, active resources and memory', async () => {
      const res = await request(s.managementUrl).get('/debug/runtime');
      expect(res.status).toBe(200);
      expect(res.body.eventLoop.delayMs).toEqual(expect.objectContaining({ p99: expect.any(Number) }));
      expect(res.body.eventLoop.utilizationSinceLastCall).toBeGreaterThanOrEqual(0);
      expect(res.body.memory.rss).toBeGreaterThan(0);
      expect(Object.keys(res.body.activeResources).length).toBeGreaterThan(0);
    });

    it('is never served on the relay port', async () => {
      downstream.requests.length = 0;
      await request(s.relayUrl).get('/debug/runtime');
      expect(downstream.requests.map((r) => r.url)).toEqual(['/debug/runtime']);
    });
  });
});

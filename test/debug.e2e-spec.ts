import { pbkdf2Sync } from 'node:crypto';
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import request from 'supertest';
import { freePort } from './support/sidecar';
import { killLeftover, spawnSidecar, SidecarProcess } from './support/process';
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
      const res = await request(s.managementUrl)
        .get('/debug/pprof/profile?seconds=0.3')
        .buffer(true)
        .parse((r, cb) => {
          let text = '';
          r.on('data', (c: Buffer) => (text += c.toString()));
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

    it('gives the profile in pprof format with format=pprof (gzipped protobuf, a busy function in its samples)', async () => {
      // The sidecar runs in this process, so a function of the test that keeps the CPU busy is in the profile.
      // Busy in native slices (PBKDF2) so the sidecar can still answer between them; never past 20 s. A hot
      // JS loop would not do: V8 leaves code that was compiled on-stack before the profile started out of
      // the profile's frames, and its samples land on the caller (here Node's processImmediate).
      let profiling = true;
      const stopAt = performance.now() + 20_000;
      const burnCpuForPprofTest = () => {
        pbkdf2Sync('secret', 'salt', 5_000, 32, 'sha256');
        if (profiling && performance.now() < stopAt) setImmediate(burnCpuForPprofTest);
      };
      burnCpuForPprofTest();
      let res: request.Response;
      try {
        res = await request(s.managementUrl)
          .get('/debug/pprof/profile?seconds=1&format=pprof')
          .buffer(true)
          .parse((r, cb) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => cb(null, Buffer.concat(chunks)));
          });
      } finally {
        profiling = false;
      }
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-disposition']).toMatch(/^attachment; filename="pod-sidecar-\d+\.pb\.gz"$/);
      const p = Profile.decode(gunzipSync(res.body as Buffer));
      const str = (i: unknown) => p.stringTable.strings[Number(i)];
      expect(p.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`)).toEqual(['samples/count', 'cpu/nanoseconds']);
      const burner = p.function.filter((f) => str(f.name) === 'burnCpuForPprofTest').map((f) => Number(f.id));
      expect(burner.length).toBeGreaterThan(0);
      expect(burner.every((id) => str(p.function.find((f) => Number(f.id) === id)!.filename).endsWith('debug.e2e-spec.ts'))).toBe(true);
      const burnerLocations = new Set(p.location.filter((l) => burner.includes(Number(l.line[0].functionId))).map((l) => Number(l.id)));
      // the burner anywhere in the stack: the leaf is PBKDF2's own frame
      const burnerNanos = p.sample
        .filter((x) => x.locationId.some((id) => burnerLocations.has(Number(id))))
        .reduce((sum, x) => sum + Number(x.value[1]), 0);
      expect(burnerNanos).toBeGreaterThan(0);
      expect(Number(p.durationNanos)).toBeGreaterThanOrEqual(0.9e9);
      expect(Math.abs(Number(BigInt(p.timeNanos) / 1_000_000n) - Date.now())).toBeLessThan(10_000);
    });

    it('answers 400 to a format it does not know, before profiling', async () => {
      const asked = performance.now();
      const res = await request(s.managementUrl).get('/debug/pprof/profile?seconds=1&format=xml');
      expect(performance.now() - asked).toBeLessThan(900);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'bad_request', message: 'format must be one of cpuprofile, pprof' });
    });

    it('takes one profile at a time and caps the duration', async () => {
      const first = request(s.managementUrl)
        .get('/debug/pprof/profile?seconds=0.5')
        .then((r) => r.status);
      await new Promise((r) => setTimeout(r, 100));
      const second = await request(s.managementUrl).get('/debug/pprof/profile?seconds=0.1');
      expect(second.status).toBe(409);
      expect(await first).toBe(200);
      const tooLong = await request(s.managementUrl).get('/debug/pprof/profile?seconds=3600');
      expect(tooLong.status).toBe(400);
      expect(tooLong.body.message).toContain('at most 60');
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

  // The snapshot is of the sidecar's own heap, so it is taken from a sidecar process: in-process it
  // would be the test runner's heap (hundreds of MB) and measure nothing the user sees.
  describe('heap snapshot of a running sidecar', () => {
    let running: SidecarProcess | undefined;
    afterAll(() => killLeftover(running));

    it('streams a complete V8 heap snapshot that DevTools can open', async () => {
      const managementPort = await freePort();
      running = spawnSidecar({
        DOWNSTREAM_SERVICE_URL: downstream.url,
        ENABLE_PPROF: 'true',
        MANAGEMENT_PORT: String(managementPort),
        RELAY_PORT: String(await freePort()),
      });
      await running.ready;
      const { status, type, body } = await new Promise<{ status?: number; type?: string; body: string }>((resolve, reject) =>
        get(`http://127.0.0.1:${managementPort}/debug/pprof/heap`, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode, type: res.headers['content-disposition'], body: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        }).on('error', reject),
      );
      expect(status).toBe(200);
      expect(type).toMatch(/\.heapsnapshot"$/);
      const snapshot = JSON.parse(body);
      expect(snapshot.snapshot.meta.node_fields).toContain('name');
      expect(snapshot.snapshot.node_count).toBeGreaterThan(1000);
      expect(snapshot.nodes.length).toBe(snapshot.snapshot.node_count * snapshot.snapshot.meta.node_fields.length);
    });
  });
});

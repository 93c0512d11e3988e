import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import request from 'supertest';
import { spawnSidecar, SidecarProcess, killLeftover } from './support/process';
import { RecordingServer } from './support/recording-server';
import { freePort } from './support/sidecar';

/** The built sidecar as a process: exit codes, log lines, signals. */
describe('the sidecar process', () => {
  const downstream = new RecordingServer();
  let running: SidecarProcess | undefined;

  beforeAll(() => downstream.listen());
  afterAll(() => downstream.close());
  afterEach(async () => {
    await killLeftover(running);
    running = undefined;
    downstream.respond = (_r, res) => res.end('ok');
  });

  async function startProcess(env: Record<string, string> = {}) {
    const [relay, management] = [await freePort(), await freePort()];
    running = spawnSidecar({
      DOWNSTREAM_SERVICE_URL: downstream.url,
      RELAY_PORT: String(relay),
      MANAGEMENT_PORT: String(management),
      ...env,
    });
    await running.ready;
    return { p: running, relayUrl: `http://127.0.0.1:${relay}`, managementUrl: `http://127.0.0.1:${management}`, relay };
  }

  it('reads pipelined requests no faster than it answers them: 150 × 1 MiB sent back to back on one connection do not pile up in memory', async () => {
    // A destination that takes each body without keeping it, and answers after 10 ms.
    const urls: string[] = [];
    const slow = createServer((req, res) => {
      urls.push(req.url!);
      req.resume().on('end', () => setTimeout(() => res.end('ok'), 10));
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    try {
      const { p, relay } = await startProcess({ DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${(slow.address() as AddressInfo).port}` });
      const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.proc.pid}/status`, 'utf8'))![1]) * 1024;
      await new Promise((r) => setTimeout(r, 300));
      const before = rss();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
      const socket = connect(relay, '127.0.0.1');
      let answered = '';
      socket.on('data', (d: Buffer) => (answered += d.toString('latin1')));
      const answers = () => answered.match(/HTTP\/1\.1 200/g)?.length ?? 0;
      const body = Buffer.alloc(1 << 20, 0x61);
      const N = 150;
      try {
        // As fast as the relay takes them (the client's own buffer stays small).
        for (let i = 0; i < N; i++) {
          socket.write(`POST /pipelined/${i} HTTP/1.1\r\nHost: relay.test\r\nContent-Length: ${body.length}\r\n\r\n`);
          if (!socket.write(body)) await new Promise((r) => socket.once('drain', r));
        }
        const deadline = Date.now() + 30_000;
        while (answers() < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      } finally {
        clearInterval(sampler);
        socket.destroy();
      }
      expect(answers()).toBe(N);
      expect(urls).toEqual(Array.from({ length: N }, (_, i) => `/pipelined/${i}`));
      // Read as fast as they arrive, the 150 MiB would be in the process together (measured
      // 124-146 MiB more for 60 MiB before reading was paused); paced, what is left is
      // garbage the GC has not yet collected (about 64 MiB of Buffers).
      expect(peak - before).toBeLessThan(100 * 1024 * 1024);
    } finally {
      await new Promise((r) => slow.close(r));
    }
  });

  it('passes a response of thousands of small chunks to a caller that reads slowly: every byte, one wait for its buffer at a time', async () => {
    // 4 MiB to fill the caller's buffers, then 40,000 chunks of 16 bytes.
    const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const tiny = Array.from({ length: 40_000 }, (_, i) => `10\r\n${String(i).padStart(16, '.')}\r\n`).join('');
    const chunky = createNetServer((s) => {
      s.once('data', () => {
        s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n`);
        s.write(big);
        s.write(`\r\n${tiny}0\r\n\r\n`);
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => chunky.listen(0, '127.0.0.1', r));
    try {
      const { p, relay } = await startProcess({ DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${(chunky.address() as AddressInfo).port}` });
      const socket = connect(relay, '127.0.0.1');
      socket.write('GET /chunky HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n\r\n');
      // A slow reader: takes what is there every 20 ms, so that the relay's buffer to it is
      // full most of the time while the small chunks go through.
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        socket.pause();
      });
      const reader = setInterval(() => socket.resume(), 20);
      await once(socket, 'close');
      clearInterval(reader);
      const got = Buffer.concat(chunks).toString('latin1');
      expect(got.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
      // De-chunk what the relay sent and compare with what the destination meant.
      let body = '';
      let pos = got.indexOf('\r\n\r\n') + 4;
      for (;;) {
        const eol = got.indexOf('\r\n', pos);
        const size = parseInt(got.slice(pos, eol), 16);
        if (size === 0) break;
        body += got.slice(eol + 2, eol + 2 + size);
        pos = eol + 2 + size + 2;
      }
      expect(body.length).toBe(big.length + 40_000 * 16);
      expect(body.endsWith('...........39999')).toBe(true);
      expect(p.stderr()).not.toContain('MaxListenersExceededWarning');
    } finally {
      await new Promise((r) => chunky.close(r));
    }
  });

  describe('configuration errors exit 78 before anything starts', () => {
    it('names the settings that switch features on when nothing is configured', async () => {
      running = spawnSidecar({});
      expect(await running.exited).toBe(78);
      expect(running.stderr()).toContain('no feature is configured');
      expect(running.stderr()).toContain('DOWNSTREAM_SERVICE_URL');
      expect(running.stderr()).toContain('SMEE_CHANNEL_URL');
    });

    it('lists every problem in one message', async () => {
      running = spawnSidecar({ DOWNSTREAM_SERVICE_URL: 'nope', RELAY_PORT: '0x', LOG_FORMAT: 'xml' });
      expect(await running.exited).toBe(78);
      expect(running.stderr()).toMatch(/invalid configuration \(3 problems\)/);
      expect(running.stderr()).toContain('DOWNSTREAM_SERVICE_URL="nope"');
      expect(running.stderr()).toContain('RELAY_PORT="0x"');
      expect(running.stderr()).toContain('LOG_FORMAT="xml"');
      expect(running.lines).toEqual([]);
    });

    it('never prints a password from a URL, even one that does not parse', async () => {
      running = spawnSidecar({ DOWNSTREAM_SERVICE_URL: 'http://user:hunter2pw@' });
      expect(await running.exited).toBe(78);
      expect(running.stderr()).toContain('DOWNSTREAM_SERVICE_URL="http://***@"');
      expect(running.stderr()).not.toContain('hunter2pw');
    });
  });

  describe('logs', () => {
    it('one JSON ready line; nothing per successful relay at info; one line per relay error', async () => {
      const { p, relayUrl } = await startProcess();
      const atStart = p.lines.length;
      expect(p.lines.every((l) => JSON.parse(l).level)).toBe(true);
      for (let i = 0; i < 5; i++) await request(relayUrl).post('/ok').send('x');
      expect(p.lines.length).toBe(atStart);

      downstream.respond = (_r, res) => res.socket!.destroy();
      await request(relayUrl).post('/fail').send('x');
      await new Promise((r) => setTimeout(r, 100));
      const added = p.lines.slice(atStart).map((l) => JSON.parse(l));
      expect(added).toHaveLength(1);
      expect(added[0]).toMatchObject({ level: 'warn', context: 'Relay', msg: 'relay to downstream failed', outcome: 'unreachable' });
    });

    it('at debug, a line per request with secrets and the query left out', async () => {
      const { p, relayUrl } = await startProcess({ LOG_LEVEL: 'debug' });
      await request(relayUrl)
        .post('/hook?token=q-secret-value')
        .set({
          authorization: 'Bearer auth-secret-value',
          'x-hub-signature-256': 'sha256=signature-secret-value',
          cookie: 'session=cookie-secret-value',
        })
        .send('x');
      await new Promise((r) => setTimeout(r, 100));
      const all = p.lines.join('\n');
      expect(all).not.toMatch(/secret-value/);
      const line = p.lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'relaying');
      expect(line).toMatchObject({
        level: 'debug',
        method: 'POST',
        path: '/hook',
        headers: { authorization: '[redacted]', 'x-hub-signature-256': '[redacted]' },
      });
    });
  });

  describe('SIGTERM', () => {
    it('stops accepting, lets the request in flight finish, exits 0', async () => {
      let release!: () => void;
      downstream.respond = (_r, res) => (release = () => res.end('finished'));
      const { p, relayUrl, relay } = await startProcess();
      const inFlight = request(relayUrl).post('/slow').send('x');
      const answer = inFlight.then((r) => [r.status, r.text]);
      await new Promise((r) => setTimeout(r, 200));
      p.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      const refused = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port: relay, method: 'POST', path: '/late' }, () => resolve('accepted'));
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        req.end('x');
      });
      expect(refused).toBe('ECONNREFUSED');
      release();
      expect(await answer).toEqual([200, 'finished']);
      expect(await p.exited).toBe(0);
      expect(p.lines.some((l) => l.includes('"shutting down"'))).toBe(true);
    });

    it('does not wait past SHUTDOWN_TIMEOUT_SECONDS for a downstream that never answers', async () => {
      downstream.respond = () => undefined;
      const { p, relayUrl } = await startProcess({ SHUTDOWN_TIMEOUT_SECONDS: '0.5' });
      const stuck = request(relayUrl)
        .post('/stuck')
        .send('x')
        .then(
          (r) => r.status,
          (e: NodeJS.ErrnoException) => e.code,
        );
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      p.proc.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(await stuck).toBe('ECONNRESET');
    });
  });
});

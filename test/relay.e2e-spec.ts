import { createHmac, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import request from 'supertest';
import { RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';

type Started = Awaited<ReturnType<typeof start>>;

/** supertest would JSON-encode a Buffer; this sends its bytes as they are. */
const asIs = ((b: Buffer) => b) as unknown as (obj: unknown) => string;

/** Sends raw bytes and returns the raw answer, for what an HTTP client library would tidy up. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
}

async function metric(sidecar: Started, line: string): Promise<number> {
  const text = (await request(sidecar.managementUrl).get('/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.split(' ')[1]) : 0;
}

describe('relay', () => {
  const downstream = new RecordingServer();
  let sidecar: Started;

  beforeAll(async () => {
    await downstream.listen();
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: `${downstream.url}/webhook?token=t1`,
      RELAY_MAX_BODY_BYTES: '65536',
      RELAY_TIMEOUT_SECONDS: '0.5',
    });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });
  beforeEach(() => {
    downstream.requests.length = 0;
    downstream.respond = (_req, res) => res.end('ok');
  });

  it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('forwards %s with the path joined and queries merged', async (method) => {
    const res = await request(sidecar.relayUrl)[method.toLowerCase() as 'get']('/github/events?delivery=42');
    expect(res.status).toBe(200);
    expect(downstream.requests).toHaveLength(1);
    expect(downstream.requests[0]).toMatchObject({ method, url: '/webhook/github/events?token=t1&delivery=42' });
  });

  it('joins a bare / onto the destination path as /webhook/', async () => {
    await request(sidecar.relayUrl).post('/').send('x');
    expect(downstream.requests[0].url).toBe('/webhook/?token=t1');
  });

  it('answers HEAD with the downstream status and no body', async () => {
    downstream.respond = (_r, res) => res.writeHead(204, { 'x-head': 'yes' }).end();
    const res = await request(sidecar.relayUrl).head('/h');
    expect(res.status).toBe(204);
    expect(res.headers['x-head']).toBe('yes');
  });

  const bodies: Array<[string, string, Buffer]> = [
    [
      'JSON with odd whitespace and non-ASCII',
      'application/json',
      Buffer.from('{ "a" :1,\n\t"name":"Zoë — 東京 🚀" ,"n":1.50 }\r\n', 'utf8'),
    ],
    ['a form', 'application/x-www-form-urlencoded', Buffer.from('payload=%7B%22a%22%3A1%7D&x=a+b')],
    ['binary', 'application/octet-stream', randomBytes(40_000)],
    ['an unknown content type', 'application/vnd.weird+xml; charset=latin1', Buffer.from([0xe9, 0x00, 0xff, 0x0a])],
  ];
  it.each(bodies)('delivers %s byte for byte', async (_name, type, body) => {
    const res = await request(sidecar.relayUrl).post('/b').set('content-type', type).serialize(asIs).send(body);
    expect(res.status).toBe(200);
    expect(downstream.requests[0].body.equals(body)).toBe(true);
    expect(downstream.requests[0].headers['content-type']).toBe(type);
    expect(downstream.requests[0].headers['content-length']).toBe(String(body.length));
  });

  it('delivers an empty body and a chunked body byte for byte', async () => {
    await request(sidecar.relayUrl).post('/e').set('content-length', '0').send();
    expect(downstream.requests[0].body.length).toBe(0);

    const parts = [Buffer.from('{"chunk":'), Buffer.from('"one"'), Buffer.from(',"two":"ü"}')];
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        { port: sidecar.relayPort!, host: '127.0.0.1', method: 'POST', path: '/c', headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      for (const p of parts) req.write(p);
      req.end();
    });
    const got = downstream.requests[1];
    expect(got.body.equals(Buffer.concat(parts))).toBe(true);
    expect(got.headers['transfer-encoding']).toBeUndefined();
  });

  it('keeps a GitHub HMAC-SHA256 signature valid at the downstream', async () => {
    const secret = 'It’s a Secret to Everybody';
    const body = Buffer.from('{"action" : "opened",  "title":"Ünïcödé ✓",\n "n": 1e3 }', 'utf8');
    const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
    await request(sidecar.relayUrl)
      .post('/gh')
      .set({ 'content-type': 'application/json', 'x-hub-signature-256': signature, 'x-github-event': 'pull_request' })
      .serialize(asIs)
      .send(body);
    const got = downstream.requests[0];
    expect(`sha256=${createHmac('sha256', secret).update(got.body).digest('hex')}`).toBe(got.headers['x-hub-signature-256']);
    expect(got.headers['x-github-event']).toBe('pull_request');
  });

  it("sets Host to the destination, X-Forwarded-*, drops hop-by-hop headers and callers' Forwarded, X-Real-IP, X-Forwarded-Port", async () => {
    const answer = await rawExchange(
      sidecar.relayPort!,
      [
        'POST /h HTTP/1.1',
        'Host: relay.example:8080',
        'Connection: close, X-Drop-Me',
        'X-Drop-Me: 1',
        'Keep-Alive: timeout=3',
        'Upgrade: websocket',
        'TE: trailers',
        'Proxy-Authorization: Basic eA==',
        'X-Forwarded-For: 192.0.2.1',
        'X-Keep: yes',
        'Forwarded: for=203.0.113.9;host=evil.example;proto=https',
        'X-Real-IP: 203.0.113.9',
        'X-Forwarded-Port: 443',
        'X-Forwarded-Host: evil.example',
        'Content-Length: 2',
        '',
        'hi',
      ].join('\r\n'),
    );
    expect(answer).toMatch(/^HTTP\/1.1 200/);
    const h = downstream.requests[0].headers;
    expect(h.host).toBe(`127.0.0.1:${downstream.port}`);
    expect(h['x-forwarded-host']).toBe('relay.example:8080');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-for']).toBe('192.0.2.1, 127.0.0.1');
    expect(h['x-keep']).toBe('yes');
    for (const gone of ['x-drop-me', 'keep-alive', 'upgrade', 'te', 'proxy-authorization']) expect(h[gone]).toBeUndefined();
    // What callers claim of earlier hops: the relay vouches only for what it saw itself.
    for (const gone of ['forwarded', 'x-real-ip', 'x-forwarded-port']) expect(h[gone]).toBeUndefined();
  });

  it('returns the downstream status, headers and body', async () => {
    downstream.respond = (_r, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(201, { 'x-app': 'yes', 'content-type': 'text/csv', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': 'x' });
      res.end('a,b\n1,2\n');
    };
    const res = await request(sidecar.relayUrl).post('/r').send('x');
    expect(res.status).toBe(201);
    expect(res.headers['x-app']).toBe('yes');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(res.headers['x-secret-hop']).toBeUndefined();
    expect(res.text).toBe('a,b\n1,2\n');
  });

  it('streams the answer: the first chunk reaches the caller before downstream has finished', async () => {
    let finish!: () => void;
    downstream.respond = (_r, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      finish = () => res.end('last');
    };
    const chunks: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ port: sidecar.relayPort!, host: '127.0.0.1', path: '/s' }, (res) => {
        res.on('data', (c: Buffer) => {
          chunks.push(c.toString());
          if (chunks.length === 1) finish();
        });
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    expect(chunks.join('')).toBe('first;last');
    expect(chunks[0]).toBe('first;');
  });

  it('answers 413 as JSON without contacting downstream when Content-Length is over the limit', async () => {
    const answer = await rawExchange(sidecar.relayPort!, 'POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 413/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: 'payload_too_large',
      message: expect.stringContaining('65536'),
    });
    expect(downstream.requests).toHaveLength(0);
  });

  it('answers 413 to a chunked body that grows over the limit, and keeps serving', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ port: sidecar.relayPort!, host: '127.0.0.1', method: 'POST', path: '/big' }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write(Buffer.alloc(40_000));
      req.write(Buffer.alloc(40_000));
      req.end();
    });
    expect(status).toBe(413);
    expect(downstream.requests).toHaveLength(0);
    expect((await request(sidecar.relayUrl).post('/after').send('ok')).status).toBe(200);
  });

  it('answers 504 as JSON when downstream sends no headers within RELAY_TIMEOUT_SECONDS', async () => {
    downstream.respond = (_r, res) => setTimeout(() => res.end('late'), 1500);
    const started = Date.now();
    const res = await request(sidecar.relayUrl).post('/slow').send('x');
    expect(res.status).toBe(504);
    expect(res.body).toEqual({ error: 'downstream_timeout', message: expect.any(String) });
    expect(Date.now() - started).toBeLessThan(1400);
  });

  it('stops the downstream request when the caller gives up, and keeps serving', async () => {
    let closedAtDownstream = 0;
    downstream.respond = (_r, res) => {
      res.on('close', () => closedAtDownstream++);
    };
    await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          new Promise<void>((resolve) => {
            const req = httpRequest({ port: sidecar.relayPort!, host: '127.0.0.1', method: 'POST', path: '/abandon' });
            req.on('error', () => resolve());
            req.end('x');
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 100);
          }),
      ),
    );
    const deadline = Date.now() + 2000;
    while (closedAtDownstream < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(closedAtDownstream).toBe(10);
    downstream.respond = (_r, res) => res.end('ok');
    expect((await request(sidecar.relayUrl).post('/after').send('ok')).status).toBe(200);
    const status = await request(sidecar.managementUrl).get('/status');
    expect(status.body.relay.inFlight).toBe(0);
  });

  it('answers a malformed request 400 as JSON and keeps serving', async () => {
    const answer = await rawExchange(sidecar.relayPort!, 'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 400/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error).toBe('bad_request');
    expect((await request(sidecar.relayUrl).get('/still-up')).status).toBe(200);
  });

  it('consumes health-check events: answered 200, never forwarded, unknown ids counted', async () => {
    const before = await metric(sidecar, 'sidecar_health_events_total{origin="foreign"}');
    const res = await request(sidecar.relayUrl)
      .post('/')
      .set({ 'x-health-check-id': 'someone-else', 'content-type': 'application/json' })
      .send('{"type":"health-check","id":"someone-else"}');
    expect(res.status).toBe(200);
    expect(downstream.requests).toHaveLength(0);
    expect(await metric(sidecar, 'sidecar_health_events_total{origin="foreign"}')).toBe(before + 1);
  });

  it('forwards a body that only looks like a health check (no header)', async () => {
    await request(sidecar.relayUrl).post('/').set('content-type', 'application/json').send('{"type":"health-check","id":"x"}');
    expect(downstream.requests).toHaveLength(1);
  });

  it('counts events the downstream answered as smee_events_relayed_total, and times them by status class', async () => {
    const before = await metric(sidecar, 'smee_events_relayed_total');
    const timedBefore = await metric(sidecar, 'sidecar_relay_duration_seconds_count{status_class="5xx"}');
    downstream.respond = (_r, res) => res.writeHead(500).end();
    await request(sidecar.relayUrl).post('/a').send('x');
    await request(sidecar.relayUrl).post('/a').send('x');
    expect(await metric(sidecar, 'smee_events_relayed_total')).toBe(before + 2);
    expect(await metric(sidecar, 'sidecar_relay_duration_seconds_count{status_class="5xx"}')).toBe(timedBefore + 2);
    expect(await metric(sidecar, 'sidecar_relay_duration_seconds_bucket{le="+Inf",status_class="5xx"}')).toBe(timedBefore + 2);
  });

  it('keeps the planes apart: management routes are relayed, relayed paths are 404 on management', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz', '/status']) {
      downstream.requests.length = 0;
      await request(sidecar.relayUrl).get(path);
      expect(downstream.requests.map((r) => r.url)).toEqual([`/webhook${path}?token=t1`]);
    }
    expect((await request(sidecar.managementUrl).post('/github/events').send('x')).status).toBe(404);
    expect((await request(sidecar.managementUrl).get('/metrics')).text).toContain('smee_events_relayed_total');
  });
});

describe('relay with downstream down', () => {
  let sidecar: Started;
  beforeAll(async () => {
    const gone = new RecordingServer();
    await gone.listen();
    const url = gone.url;
    await gone.close();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: url });
  });
  afterAll(() => sidecar.close());

  it('answers 502 as JSON and counts it', async () => {
    const res = await request(sidecar.relayUrl).post('/x').send('x');
    expect(res.status).toBe(502);
    expect(res.body).toEqual({ error: 'downstream_unreachable', message: expect.stringContaining('downstream could not be reached') });
    expect(await metric(sidecar, 'sidecar_relay_requests_total{outcome="unreachable"}')).toBe(1);
    expect(await metric(sidecar, 'smee_events_relayed_total')).toBe(0);
  });
});

describe('relay with no downstream (health events only)', () => {
  let sidecar: Started;
  beforeAll(async () => {
    sidecar = await start({ SMEE_CHANNEL_URL: 'http://127.0.0.1:9/chan', HEALTH_CHECK_INTERVAL_SECONDS: '3600' });
  });
  afterAll(() => sidecar.close());

  it('answers other requests 503 as JSON', async () => {
    const res = await request(sidecar.relayUrl).post('/x').send('x');
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('no_destination');
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { Recorded, RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';
import { DISPATCHER_README_EXAMPLE } from './fixtures/dispatcher-readme-example';

type Started = Awaited<ReturnType<typeof start>>;

/** supertest would JSON-encode a Buffer; this sends its bytes as they are. */
const asIs = ((b: Buffer) => b) as unknown as (obj: unknown) => string;

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sidecar-dispatch-')), 'config.yaml');
  writeFileSync(path, text);
  return path;
}

/** Sends raw header lines (duplicates, Connection-listed names) that HTTP client libraries would tidy up. */
function rawExchange(port: number, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
}

/** Every value a destination received for a header, from its raw headers (duplicates visible). */
function received(rec: Recorded, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) if (rec.rawHeaders[i].toLowerCase() === name) out.push(rec.rawHeaders[i + 1]);
  return out;
}

async function metric(sidecar: Started, line: string): Promise<number | undefined> {
  const text = (await request(sidecar.managementUrl).get('/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.split(' ')[1]) : undefined;
}

describe("dispatch by header (the sidecar's own dispatch section)", () => {
  const dev = new RecordingServer();
  const staging = new RecordingServer();
  const base = new RecordingServer();
  const all = [dev, staging, base];
  let sidecar: Started;

  beforeAll(async () => {
    for (const s of all) await s.listen();
    const file = configFile(`
dispatch:
  header: X-Environment
  default: ${base.url}/base?from=default
  rules:
    dev:
      destination: ${dev.url}/dev-hook?from=dev
      patch:
        - set: { X-Dispatched: dev }
        - set: { x-team: platform }
        - remove: X-Debug
    staging:
      destination: ${staging.url}/stage
      keepHost: true
      name: stage
    example:
      patch:
        - set: { Host: example.com }
`);
    sidecar = await start({ SIDECAR_CONFIG: file, RELAY_TIMEOUT_SECONDS: '5' });
  });
  afterAll(async () => {
    await sidecar.close();
    for (const s of all) await s.close();
  });
  beforeEach(() => {
    for (const s of all) {
      s.requests.length = 0;
      s.respond = (_req, res) => res.end('ok');
    }
  });

  it("starts every rule's counter at 0, default included", async () => {
    for (const rule of ['default', 'dev', 'stage', 'example']) {
      expect(await metric(sidecar, `sidecar_dispatch_requests_total{rule="${rule}"}`)).toBe(0);
    }
  });

  it('routes by the header value, header name in any case, path and query joined onto each destination', async () => {
    await request(sidecar.relayUrl).post('/a/b?q=1').set('x-environment', 'dev').send('x');
    await request(sidecar.relayUrl).get('/a/b?q=2').set('X-ENVIRONMENT', 'staging');
    await request(sidecar.relayUrl).put('/c').set('X-Environment', 'example').send('y');
    expect(dev.requests.map((r) => [r.method, r.url])).toEqual([['POST', '/dev-hook/a/b?from=dev&q=1']]);
    expect(staging.requests.map((r) => [r.method, r.url])).toEqual([['GET', '/stage/a/b?q=2']]);
    // a rule without a destination goes to the default one, with its patches
    expect(base.requests.map((r) => [r.method, r.url])).toEqual([['PUT', '/base/c?from=default']]);
  });

  it.each([
    ['no X-Environment header', {}],
    ['an unknown value', { 'X-Environment': 'prod' }],
    ['a known value in another case', { 'X-Environment': 'DEV' }],
    ['an empty value', { 'X-Environment': '' }],
  ])('sends a request with %s to the default destination, unpatched', async (_what, headers) => {
    const res = await request(sidecar.relayUrl).post('/x?y=1').set(headers).set('X-Debug', 'kept').send('x');
    expect(res.status).toBe(200);
    expect(dev.requests).toHaveLength(0);
    expect(staging.requests).toHaveLength(0);
    expect(base.requests).toHaveLength(1);
    expect(base.requests[0].url).toBe('/base/x?from=default&y=1');
    expect(base.requests[0].headers['x-debug']).toBe('kept');
    expect(base.requests[0].headers['x-dispatched']).toBeUndefined();
    expect(base.requests[0].headers.host).toBe(`127.0.0.1:${base.port}`);
  });

  it('applies patches after hop-by-hop filtering: set replaces every occurrence in any case, remove drops them all', async () => {
    const answer = await rawExchange(sidecar.relayPort!, [
      'POST /p HTTP/1.1',
      'Host: relay.example:8080',
      'X-Environment: dev',
      'X-Team: a',
      'x-TEAM: b',
      'X-DEBUG: 1',
      'x-debug: 2',
      // the client's own X-Dispatched is hop-by-hop here; the rule's value is sent all the same
      'Connection: close, X-Dispatched',
      'X-Dispatched: from-client',
      'X-Other: kept',
      'Content-Length: 2',
      '',
      'hi',
    ]);
    expect(answer).toMatch(/^HTTP\/1.1 200/);
    const got = dev.requests[0];
    expect(received(got, 'x-team')).toEqual(['platform']);
    expect(received(got, 'x-dispatched')).toEqual(['dev']);
    expect(received(got, 'x-debug')).toEqual([]);
    expect(received(got, 'x-other')).toEqual(['kept']);
    expect(received(got, 'connection')).not.toContain('X-Dispatched');
    expect(got.body.toString()).toBe('hi');
  });

  it("sends the destination's Host, the caller's with keepHost, and a patched Host over both", async () => {
    await request(sidecar.relayUrl).get('/h').set({ Host: 'public.example:8443', 'X-Environment': 'dev' });
    await request(sidecar.relayUrl).get('/h').set({ Host: 'public.example:8443', 'X-Environment': 'staging' });
    await request(sidecar.relayUrl).get('/h').set({ Host: 'public.example:8443', 'X-Environment': 'example' });
    expect(received(dev.requests[0], 'host')).toEqual([`127.0.0.1:${dev.port}`]);
    expect(received(staging.requests[0], 'host')).toEqual(['public.example:8443']);
    expect(received(base.requests[0], 'host')).toEqual(['example.com']);
    for (const r of [dev.requests[0], staging.requests[0], base.requests[0]])
      expect(r.headers['x-forwarded-host']).toBe('public.example:8443');
  });

  it('delivers the body byte for byte to the chosen destination', async () => {
    const body = Buffer.from('{ "ref" :"refs/heads/main",\n "name":"Zoë ✓" }\r\n', 'utf8');
    await request(sidecar.relayUrl)
      .post('/gh')
      .set({ 'content-type': 'application/json', 'X-Environment': 'staging' })
      .serialize(asIs)
      .send(body);
    expect(staging.requests[0].body.equals(body)).toBe(true);
  });

  it("streams the chosen destination's answer back with its status and headers", async () => {
    let finish!: () => void;
    staging.respond = (_r, res) => {
      res.writeHead(207, { 'content-type': 'text/plain', 'x-from': 'staging', connection: 'keep-alive, x-hop', 'x-hop': '1' });
      res.write('first;');
      finish = () => res.end('last');
    };
    const chunks: string[] = [];
    const answer = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = httpRequest(
        { port: sidecar.relayPort!, host: '127.0.0.1', path: '/s', headers: { 'X-Environment': 'staging' } },
        (res) => {
          res.on('data', (c: Buffer) => {
            chunks.push(c.toString());
            if (chunks.length === 1) finish();
          });
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(answer.status).toBe(207);
    expect(answer.headers['x-from']).toBe('staging');
    expect(answer.headers['x-hop']).toBeUndefined();
    expect(chunks[0]).toBe('first;');
    expect(chunks.join('')).toBe('first;last');
  });

  it('counts requests by rule name', async () => {
    const before = await metric(sidecar, 'sidecar_dispatch_requests_total{rule="stage"}');
    const defaultBefore = await metric(sidecar, 'sidecar_dispatch_requests_total{rule="default"}');
    await request(sidecar.relayUrl).get('/m').set('X-Environment', 'staging');
    await request(sidecar.relayUrl).get('/m').set('X-Environment', 'staging');
    await request(sidecar.relayUrl).get('/m').set('X-Environment', 'nope');
    expect(await metric(sidecar, 'sidecar_dispatch_requests_total{rule="stage"}')).toBe(before! + 2);
    expect(await metric(sidecar, 'sidecar_dispatch_requests_total{rule="default"}')).toBe(defaultBefore! + 1);
    const text = (await request(sidecar.managementUrl).get('/metrics')).text;
    expect(text).not.toContain('rule="staging"');
    expect(text).not.toContain('rule="nope"');
  });

  it('never dispatches a health-check event: it is answered at once and counted by no rule', async () => {
    const before = await metric(sidecar, 'sidecar_dispatch_requests_total{rule="dev"}');
    const res = await request(sidecar.relayUrl).post('/').set({ 'x-health-check-id': 'other-replica', 'X-Environment': 'dev' }).send('{}');
    expect(res.status).toBe(200);
    expect(dev.requests).toHaveLength(0);
    expect(await metric(sidecar, 'sidecar_dispatch_requests_total{rule="dev"}')).toBe(before);
  });

  it('shows the dispatch header and rule names on /status, no destinations', async () => {
    const res = await request(sidecar.managementUrl).get('/status');
    expect(res.body.features).toMatchObject({ relay: 'proxy', dispatch: true });
    expect(res.body.dispatch).toEqual({ header: 'X-Environment', rules: ['dev', 'stage', 'example'], hasDefault: true });
    expect(JSON.stringify(res.body)).not.toContain(`${dev.port}`);
  });
});

describe('a sidecar_http_dispatcher config file, as it is', () => {
  const exampleCom = new RecordingServer();
  const exampleOrg = new RecordingServer();
  const downstream = new RecordingServer();
  let sidecar: Started;

  beforeAll(async () => {
    for (const s of [exampleCom, exampleOrg, downstream]) await s.listen();
    const text = DISPATCHER_README_EXAMPLE.replace('destination: http://example.com ', `destination: ${exampleCom.url} `).replace(
      'destination: http://example.org ',
      `destination: ${exampleOrg.url} `,
    );
    expect(text).not.toContain('http://example.');
    // DOWNSTREAM_SERVICE_URL is only the fallback for a file without a default destination.
    sidecar = await start({ SIDECAR_CONFIG: configFile(text), DOWNSTREAM_SERVICE_URL: downstream.url });
  });
  afterAll(async () => {
    await sidecar.close();
    for (const s of [exampleCom, exampleOrg, downstream]) await s.close();
  });

  it('sends `environment: dev` to its destination with Host patched and a dispatched header, as its README shows', async () => {
    exampleCom.respond = (_r, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<title>Example Domain</title>');
    const res = await request(sidecar.relayUrl).get('/').set('environment', 'dev');
    expect(res.status).toBe(404);
    expect(res.text).toBe('<title>Example Domain</title>');
    expect(exampleCom.requests).toHaveLength(1);
    const got = exampleCom.requests[0];
    expect(got.url).toBe('/');
    expect(received(got, 'host')).toEqual(['example.com']);
    expect(received(got, 'dispatched')).toEqual(['true']);
    expect(got.headers.environment).toBe('dev');
    expect(exampleOrg.requests).toHaveLength(0);
  });

  it("sends everything else to the file's default destination, unpatched", async () => {
    await request(sidecar.relayUrl).get('/favicon.ico');
    await request(sidecar.relayUrl).get('/other').set('Environment', 'prod');
    expect(exampleOrg.requests.map((r) => r.url)).toEqual(['/favicon.ico', '/other']);
    for (const r of exampleOrg.requests) {
      expect(r.headers.host).toBe(`127.0.0.1:${exampleOrg.port}`);
      expect(r.headers.dispatched).toBeUndefined();
    }
    expect(downstream.requests).toHaveLength(0);
  });
});

describe('dispatch without a default destination', () => {
  const dev = new RecordingServer();
  let sidecar: Started;

  beforeAll(async () => {
    await dev.listen();
    sidecar = await start({
      SIDECAR_CONFIG: configFile(`dispatch:\n  header: X-Environment\n  rules:\n    dev:\n      destination: ${dev.url}\n`),
    });
  });
  afterAll(async () => {
    await sidecar.close();
    await dev.close();
  });

  it('answers unmatched requests 503 no_destination as JSON and still routes matched ones', async () => {
    const res = await request(sidecar.relayUrl).post('/x').send('x');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'no_destination', message: expect.stringContaining('no dispatch rule matched') });
    expect(await metric(sidecar, 'sidecar_relay_requests_total{outcome="no_destination"}')).toBe(1);
    expect(await metric(sidecar, 'sidecar_dispatch_requests_total{rule="default"}')).toBe(1);
    expect((await request(sidecar.relayUrl).post('/x').set('X-Environment', 'dev').send('x')).status).toBe(200);
    expect(dev.requests).toHaveLength(1);
  });
});

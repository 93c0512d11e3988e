import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort, start } from './support/sidecar';

type Started = Awaited<ReturnType<typeof start>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const fast = { RELAY_MODE: 'spool', SPOOL_RETRY_INITIAL: '20ms', SPOOL_RETRY_MAX: '100ms' };

/** POSTs exact bytes and returns the status and parsed JSON answer. */
function post(
  port: number,
  path: string,
  body: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/octet-stream', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : {} });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(Buffer.from(bytes, 'latin1')));
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
}

async function metric(sidecar: Started, line: string): Promise<number | undefined> {
  const text = (await request(sidecar.managementUrl).get('/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.split(' ')[1]) : undefined;
}

const spoolOf = (s: Started) =>
  request(s.managementUrl)
    .get('/spool')
    .then((r) => r.body as { events: number; bytes: number; deadLetters: number; destinations: Array<Record<string, unknown>> });
const deadLettersOf = (s: Started) =>
  request(s.managementUrl)
    .get('/spool/dead-letters')
    .then((r) => r.body.deadLetters as Array<Record<string, unknown>>);
const delivered = (d: RecordingServer, n: number, ms = 5000) =>
  eventually(() => (d.requests.length >= n ? d.requests : undefined), ms, `${n} deliveries`);

describe('spool mode', () => {
  describe('receipt and delivery', () => {
    const downstream = new RecordingServer();
    let sidecar: Started;

    beforeAll(async () => {
      await downstream.listen();
      sidecar = await start({ ...fast, DOWNSTREAM_SERVICE_URL: `${downstream.url}/webhook?token=t1` });
    });
    afterAll(async () => {
      await sidecar.close();
      await downstream.close();
    });
    beforeEach(() => {
      downstream.requests.length = 0;
      downstream.respond = (_r, res) => res.end('ok');
    });

    it('answers 202 {"id"} and delivers the request as the proxy would: path, query, end-to-end headers, X-Forwarded-*, body byte for byte', async () => {
      const body = randomBytes(3000).toString('latin1');
      const answer = await rawExchange(
        sidecar.relayPort!,
        [
          'POST /github/events?delivery=42 HTTP/1.1',
          'Host: relay.example:8080',
          'Connection: close, X-Drop-Me',
          'X-Drop-Me: 1',
          'Keep-Alive: timeout=3',
          'Proxy-Authorization: Basic eA==',
          'X-Forwarded-For: 192.0.2.1',
          'X-Keep: yes',
          'X-Dup: a',
          'x-dup: b',
          'Content-Type: application/octet-stream',
          `Content-Length: ${body.length}`,
          '',
          body,
        ].join('\r\n'),
      );
      expect(answer).toMatch(/^HTTP\/1.1 202/);
      const id = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).id;
      expect(id).toMatch(UUID);

      const [got] = await delivered(downstream, 1);
      expect(got.method).toBe('POST');
      expect(got.url).toBe('/webhook/github/events?token=t1&delivery=42');
      expect(got.body.equals(Buffer.from(body, 'latin1'))).toBe(true);
      expect(got.headers).toMatchObject({
        host: `127.0.0.1:${downstream.port}`,
        'x-forwarded-host': 'relay.example:8080',
        'x-forwarded-for': '192.0.2.1, 127.0.0.1',
        'x-forwarded-proto': 'http',
        'x-keep': 'yes',
        'content-length': String(body.length),
      });
      expect(got.rawHeaders.filter((_, i, a) => i % 2 === 0 && /^x-dup$/i.test(a[i]))).toEqual(['X-Dup', 'x-dup']);
      for (const gone of ['x-drop-me', 'keep-alive', 'proxy-authorization']) expect(got.headers[gone]).toBeUndefined();
    });

    it('keeps a GitHub HMAC-SHA256 signature valid, and delivers empty bodies and other methods', async () => {
      const secret = 'It’s a Secret to Everybody';
      const body = Buffer.from('{"action" : "opened",  "title":"Ünïcödé ✓",\n "n": 1e3 }', 'utf8');
      const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
      expect(
        (await post(sidecar.relayPort!, '/gh', body, { 'content-type': 'application/json', 'x-hub-signature-256': signature })).status,
      ).toBe(202);
      expect((await request(sidecar.relayUrl).put('/empty').set('content-length', '0')).status).toBe(202);
      expect((await request(sidecar.relayUrl).get('/get?x=1')).status).toBe(202);
      const [gh, empty, get] = await delivered(downstream, 3);
      expect(`sha256=${createHmac('sha256', secret).update(gh.body).digest('hex')}`).toBe(gh.headers['x-hub-signature-256']);
      expect([empty.method, empty.body.length]).toEqual(['PUT', 0]);
      expect([get.method, get.url]).toEqual(['GET', '/webhook/get?token=t1&x=1']);
    });

    it('answers health-check events at once and never spools them; 413 stores nothing', async () => {
      const before = await metric(sidecar, 'sidecar_spool_receipts_total{result="stored"}');
      const res = await request(sidecar.relayUrl).post('/').set('x-health-check-id', 'someone-else').send('{"type":"health-check"}');
      expect([res.status, res.text]).toEqual([200, '{"received":"foreign"}']);
      const big = await rawExchange(sidecar.relayPort!, `POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${26214401}\r\n\r\n`);
      expect(big).toMatch(/^HTTP\/1.1 413/);
      expect(await metric(sidecar, 'sidecar_spool_receipts_total{result="stored"}')).toBe(before);
      expect((await spoolOf(sidecar)).events).toBe(0);
      expect(downstream.requests).toHaveLength(0);
    });

    it('retries 5xx, 408, 429 and refused connections, one event at a time in arrival order', async () => {
      const attempts: number[] = [];
      downstream.respond = (req, res) => {
        const n = Number(req.body.toString());
        attempts.push(n);
        const tries = attempts.filter((a) => a === n).length;
        if (n % 2 === 0) res.statusCode = [503, 408, 429, 500][tries - 1] ?? 200;
        else if (n % 3 === 0 && tries === 1) return void res.socket!.destroy();
        res.end();
      };
      for (let n = 1; n <= 8; n++) expect((await post(sidecar.relayPort!, '/o', String(n))).status).toBe(202);
      await eventually(async () => ((await spoolOf(sidecar)).events === 0 ? true : undefined), 10_000, 'an empty spool');
      // Strict order: once event n+1 has been tried, event n is never tried again.
      for (let i = 1; i < attempts.length; i++) expect(attempts[i]).toBeGreaterThanOrEqual(attempts[i - 1]);
      expect([...new Set(attempts)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(attempts.filter((n) => n === 2)).toHaveLength(5); // 503, 408, 429, 500, then 200
      expect(await metric(sidecar, 'sidecar_spool_deliveries_total{result="retried"}')).toBe(4 * 4 + 1);
    });

    it('honours Retry-After before the next attempt', async () => {
      const at: number[] = [];
      downstream.respond = (_r, res) => {
        at.push(Date.now());
        if (at.length === 1) res.writeHead(429, { 'retry-after': '1' });
        res.end();
      };
      await post(sidecar.relayPort!, '/ra', 'x');
      await eventually(() => (at.length === 2 ? true : undefined), 5000);
      expect(at[1] - at[0]).toBeGreaterThanOrEqual(950);
    });

    it('sends an event the destination refuses (other 4xx) to the dead letters at once, and goes on with the next', async () => {
      downstream.respond = (req, res) => {
        res.statusCode = req.body.toString().startsWith('bad') ? 422 : 200;
        res.end();
      };
      const bad = await post(sidecar.relayPort!, '/dl?token=q-secret', 'bad one', {
        authorization: 'Bearer auth-secret',
        'x-github-delivery': 'dl-1',
      });
      await post(sidecar.relayPort!, '/dl', 'good one');
      await eventually(() => (downstream.requests.some((r) => r.body.toString() === 'good one') ? true : undefined));
      expect(downstream.requests.filter((r) => r.body.toString() === 'bad one')).toHaveLength(1);

      const list = await deadLettersOf(sidecar);
      expect(list).toEqual([
        {
          id: bad.json.id,
          receivedAt: expect.any(String),
          deadAt: expect.any(String),
          rule: 'default',
          destination: downstream.url,
          deliveryId: 'dl-1',
          attempts: 1,
          lastStatus: 422,
          lastError: null,
          bytes: expect.any(Number),
        },
      ]);
      const text = (await request(sidecar.managementUrl).get('/spool/dead-letters')).text;
      expect(text).not.toMatch(/secret|bad one/);
      expect(await metric(sidecar, 'sidecar_spool_dead_letters')).toBe(1);

      downstream.respond = (_r, res) => res.end();
      const requeued = await request(sidecar.managementUrl).post(`/spool/dead-letters/${String(bad.json.id)}/requeue`);
      expect([requeued.status, requeued.body]).toEqual([200, { requeued: bad.json.id }]);
      await eventually(() => (downstream.requests.filter((r) => r.body.toString() === 'bad one').length === 2 ? true : undefined));
      const again = downstream.requests.filter((r) => r.body.toString() === 'bad one')[1];
      expect([again.url, again.headers.authorization]).toEqual(['/webhook/dl?token=t1&token=q-secret', 'Bearer auth-secret']);
      expect(await deadLettersOf(sidecar)).toEqual([]);
    });

    it('requeues every dead letter at once, deletes one, and answers 404/400 JSON for unknown or malformed ids', async () => {
      downstream.respond = (_r, res) => res.writeHead(404).end();
      const ids: string[] = [];
      for (let n = 0; n < 4; n++) ids.push(String((await post(sidecar.relayPort!, '/all', `all ${n}`)).json.id));
      await eventually(async () => ((await deadLettersOf(sidecar)).length === 4 ? true : undefined));

      const deleted = await request(sidecar.managementUrl).delete(`/spool/dead-letters/${ids[3]}`);
      expect([deleted.status, deleted.body]).toEqual([200, { deleted: ids[3] }]);
      downstream.respond = (_r, res) => res.end();
      downstream.requests.length = 0;
      const all = await request(sidecar.managementUrl).post('/spool/dead-letters/requeue');
      expect([all.status, all.body]).toEqual([200, { requeued: 3, failed: 0 }]);
      const got = await delivered(downstream, 3);
      expect(got.map((r) => r.body.toString())).toEqual(['all 0', 'all 1', 'all 2']);

      const unknown = await request(sidecar.managementUrl).post(`/spool/dead-letters/${ids[3]}/requeue`);
      expect([unknown.status, unknown.body.error]).toEqual([404, 'not_found']);
      const malformed = await request(sidecar.managementUrl).post('/spool/dead-letters/..%2Fsegments/requeue');
      expect([malformed.status, malformed.body.error]).toEqual([400, 'bad_request']);
      expect((await request(sidecar.managementUrl).delete('/spool/dead-letters/nope')).status).toBe(400);
      expect((await request(sidecar.relayUrl).get('/spool')).status).toBe(202); // the relay port relays, nothing more
      expect((await delivered(downstream, 4))[3].url).toBe('/webhook/spool?token=t1');
    });

    it('answers a repeated delivery id with the first id and delivers it once, also when both arrive together', async () => {
      const first = await post(sidecar.relayPort!, '/d', 'one', { 'x-github-delivery': 'dup-1' });
      const second = await post(sidecar.relayPort!, '/d', 'one again', { 'X-GitHub-Delivery': 'dup-1' });
      expect(second).toEqual(first);
      const together = await Promise.all(
        [1, 2, 3].map((n) => post(sidecar.relayPort!, '/d', `together ${n}`, { 'x-github-delivery': 'dup-2' })),
      );
      expect(new Set(together.map((t) => t.json.id)).size).toBe(1);
      await delivered(downstream, 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(downstream.requests.map((r) => r.body.toString())).toEqual(['one', expect.stringMatching(/^together \d$/)]);
      expect(await metric(sidecar, 'sidecar_spool_receipts_total{result="duplicate"}')).toBe(3);
    });

    it('shows the queue at /spool and in metrics', async () => {
      let release!: () => void;
      downstream.respond = (_r, res) => (release = () => res.end());
      await post(sidecar.relayPort!, '/q', 'head');
      await post(sidecar.relayPort!, '/q', 'behind');
      await delivered(downstream, 1);
      const s = await spoolOf(sidecar);
      expect(s).toMatchObject({ events: 2, maxBytes: 1073741824, deadLetters: 0 });
      expect(s.destinations).toEqual([
        expect.objectContaining({ destination: downstream.url, rules: ['default'], events: 2, inFlight: 1 }),
      ]);
      expect(JSON.stringify(s)).not.toContain('token=t1');
      expect(await metric(sidecar, 'sidecar_spool_events')).toBe(2);
      expect((await request(sidecar.managementUrl).get('/status')).body).toMatchObject({
        features: { relay: 'spool' },
        spool: { events: 2, deadLetters: 0 },
      });
      expect(await metric(sidecar, 'sidecar_spool_oldest_event_age_seconds')).toBeGreaterThan(0);
      expect(await metric(sidecar, 'sidecar_spool_bytes')).toBeGreaterThan(0);
      release();
      await delivered(downstream, 2);
      release();
      await eventually(async () => ((await spoolOf(sidecar)).events === 0 ? true : undefined));
      expect(await metric(sidecar, 'sidecar_spool_oldest_event_age_seconds')).toBe(0);
      expect(await metric(sidecar, 'sidecar_relay_requests_total{outcome="spooled"}')).toBeGreaterThan(0);
      expect(await metric(sidecar, 'smee_events_relayed_total')).toBeGreaterThan(0);
    });
  });

  it('gives an event up after SPOOL_MAX_AGE of failed attempts', async () => {
    const downstream = new RecordingServer();
    downstream.respond = (_r, res) => res.writeHead(503).end();
    await downstream.listen();
    const sidecar = await start({ ...fast, DOWNSTREAM_SERVICE_URL: downstream.url, SPOOL_MAX_AGE: '400ms' });
    try {
      const { json } = await post(sidecar.relayPort!, '/old', 'x');
      const [letter] = await eventually(async () => {
        const l = await deadLettersOf(sidecar);
        return l.length > 0 ? l : undefined;
      });
      expect(letter).toMatchObject({ id: json.id, lastStatus: 503 });
      expect(Date.parse(String(letter.deadAt)) - Date.parse(String(letter.receivedAt))).toBeGreaterThanOrEqual(400);
      expect(letter.attempts).toBeGreaterThan(2);
      expect(await metric(sidecar, 'sidecar_spool_deliveries_total{result="dead_lettered"}')).toBe(1);
    } finally {
      await sidecar.close();
      await downstream.close();
    }
  });

  it('recovers what is on disk after a restart: delivers it in order and still knows its delivery ids', async () => {
    const port = await freePort();
    const spoolPath = mkdtempSync(join(tmpdir(), 'spool-restart-'));
    const env = { ...fast, DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port}`, SPOOL_PATH: spoolPath };
    let sidecar = await start(env);
    const ids: string[] = [];
    for (let n = 0; n < 20; n++)
      ids.push(String((await post(sidecar.relayPort!, '/r', `event ${n}`, { 'x-github-delivery': `r-${n}` })).json.id));
    await sidecar.close();

    sidecar = await start(env);
    const downstream = new RecordingServer();
    try {
      expect((await spoolOf(sidecar)).events).toBe(20);
      expect((await post(sidecar.relayPort!, '/r', 'again', { 'x-github-delivery': 'r-7' })).json.id).toBe(ids[7]);
      await downstream.listen(port);
      const got = await delivered(downstream, 20);
      expect(got.map((r) => r.body.toString())).toEqual(ids.map((_, n) => `event ${n}`));
      await eventually(async () => ((await spoolOf(sidecar)).events === 0 ? true : undefined));
      await sidecar.close();

      // Delivered before this restart: remembered by the saved index, not by the spool.
      sidecar = await start(env);
      expect((await post(sidecar.relayPort!, '/r', 'again', { 'x-github-delivery': 'r-3' })).json.id).toBe(ids[3]);
      await new Promise((r) => setTimeout(r, 100));
      expect(downstream.requests).toHaveLength(20);
      expect(readdirSync(join(spoolPath, 'segments'))).toEqual([]);
    } finally {
      await sidecar.close();
      await downstream.close();
    }
  });

  it('settles a dead-lettering that a crash cut short: a record whose letter is written is not delivered again', async () => {
    const downstream = new RecordingServer();
    downstream.respond = (req, res) => res.writeHead(req.body.toString() === 'refused' ? 422 : 503).end();
    await downstream.listen();
    const spoolPath = mkdtempSync(join(tmpdir(), 'spool-settle-'));
    const env = { ...fast, DOWNSTREAM_SERVICE_URL: downstream.url, SPOOL_PATH: spoolPath };
    let sidecar = await start(env);
    try {
      const refused = await post(sidecar.relayPort!, '/s', 'refused');
      await post(sidecar.relayPort!, '/s', 'retried');
      await eventually(async () => ((await deadLettersOf(sidecar)).length === 1 ? true : undefined));
      await sidecar.close();
      // As if the process had died between writing the letter and writing the ack.
      for (const f of readdirSync(join(spoolPath, 'segments')).filter((n) => n.endsWith('.ack'))) rmSync(join(spoolPath, 'segments', f));

      downstream.respond = (_r, res) => res.end();
      sidecar = await start(env);
      await eventually(async () => ((await spoolOf(sidecar)).events === 0 ? true : undefined));
      expect(downstream.requests.filter((r) => r.body.toString() === 'refused')).toHaveLength(1);
      expect((await deadLettersOf(sidecar)).map((l) => l.id)).toEqual([refused.json.id]);
    } finally {
      await sidecar.close();
      await downstream.close();
    }
  });

  it('answers 507 spool_full past SPOOL_MAX_BYTES, stores nothing of it, loses nothing accepted, and takes events again once delivered', async () => {
    const port = await freePort();
    const sidecar = await start({ ...fast, DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${port}`, SPOOL_MAX_BYTES: '20000' });
    const downstream = new RecordingServer();
    try {
      const accepted: string[] = [];
      let full: { status: number; json: Record<string, unknown> } | undefined;
      for (let n = 0; n < 40 && !full; n++) {
        const body = `${n}:${'x'.repeat(1000)}`;
        const r = await post(sidecar.relayPort!, '/full', body);
        if (r.status === 202) accepted.push(body);
        else full = r;
      }
      expect(full).toEqual({ status: 507, json: { error: 'spool_full', message: expect.stringContaining('SPOOL_MAX_BYTES') } });
      expect(accepted.length).toBeGreaterThan(10);
      const s = await spoolOf(sidecar);
      expect(s.events).toBe(accepted.length);
      expect(s.bytes).toBeLessThanOrEqual(20000);
      expect(await metric(sidecar, 'sidecar_spool_receipts_total{result="full"}')).toBe(1);
      expect(await metric(sidecar, 'sidecar_relay_requests_total{outcome="spool_full"}')).toBe(1);

      await downstream.listen(port);
      const got = await delivered(downstream, accepted.length);
      expect(got.map((r) => r.body.toString())).toEqual(accepted);
      await eventually(async () => ((await spoolOf(sidecar)).events === 0 ? true : undefined));
      for (let n = 0; n < 30; n++) expect((await post(sidecar.relayPort!, '/full', `after ${n}:${'y'.repeat(1000)}`)).status).toBe(202);
    } finally {
      await sidecar.close();
      await downstream.close();
    }
  });

  it("a destination that keeps failing holds only about its own events' space: compaction frees what the others finished", async () => {
    const stuck = new RecordingServer();
    const healthy = new RecordingServer();
    stuck.respond = (_r, res) => res.writeHead(503).end();
    await stuck.listen();
    await healthy.listen();
    const MAX = 160_000;
    const file = join(mkdtempSync(join(tmpdir(), 'spool-compact-')), 'config.yaml');
    writeFileSync(
      file,
      `RELAY_MODE: spool\ndispatch:\n  header: X-Environment\n  default: ${healthy.url}/ok\n  rules:\n    stuck:\n      destination: ${stuck.url}/stuck\n`,
    );
    const sidecar = await start({
      SIDECAR_CONFIG: file,
      SPOOL_MAX_BYTES: String(MAX),
      SPOOL_RETRY_INITIAL: '20ms',
      SPOOL_RETRY_MAX: '100ms',
    });
    try {
      // ~800 KB in all, five times the limit; one event in ten (~80 KB) is for the destination that never takes one.
      const TOTAL = 600;
      const toHealthy: string[] = [];
      let refusedFull = 0;
      const deadline = Date.now() + 40_000;
      for (let n = 0; n < TOTAL; n++) {
        const environment = n % 10 === 0 ? 'stuck' : 'prod';
        const body = `${n}:${'c'.repeat(1000)}`;
        for (;;) {
          const r = await post(sidecar.relayPort!, '/c', body, { 'x-environment': environment });
          if (r.status === 202) break;
          expect(r.status).toBe(507);
          refusedFull++;
          if (Date.now() > deadline)
            throw new Error(
              `event ${n} still refused as spool_full after 40 s (${refusedFull} refusals): the stuck destination's segments are never given back`,
            );
          await new Promise((r) => setTimeout(r, 50));
        }
        if (environment === 'prod') toHealthy.push(body);
      }
      const got = await delivered(healthy, toHealthy.length, 20_000);
      expect(got.map((r) => r.body.toString())).toEqual(toHealthy);
      const s = await eventually(async () => {
        const now = await spoolOf(sidecar);
        return now.events === TOTAL / 10 ? now : undefined;
      });
      expect(s.bytes).toBeLessThanOrEqual(MAX);
      expect(await metric(sidecar, 'sidecar_spool_compactions_total')).toBeGreaterThan(0);
      expect(stuck.requests.length).toBeGreaterThan(0);
      expect(stuck.requests.every((r) => r.body.toString() === `0:${'c'.repeat(1000)}`)).toBe(true); // strict order: only the head is tried
    } finally {
      await sidecar.close();
      await stuck.close();
      await healthy.close();
    }
  });

  it('does not start when the spool cannot be opened, and says why', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'spool-bad-')), 'a-file');
    writeFileSync(file, '');
    await expect(start({ ...fast, DOWNSTREAM_SERVICE_URL: 'http://127.0.0.1:9', SPOOL_PATH: join(file, 'spool') })).rejects.toThrow(
      /ENOTDIR/,
    );
  });

  it('dispatches in spool mode: the rule is chosen at receipt, its destination and patches apply at delivery', async () => {
    const dev = new RecordingServer();
    const base = new RecordingServer();
    await dev.listen();
    await base.listen();
    const file = join(mkdtempSync(join(tmpdir(), 'spool-dispatch-')), 'config.yaml');
    writeFileSync(
      file,
      `RELAY_MODE: spool\ndispatch:\n  header: X-Environment\n  default: ${base.url}/base\n  rules:\n    dev:\n      destination: ${dev.url}/dev\n      patch:\n        - set: { X-Dispatched: "true" }\n        - remove: X-Debug\n`,
    );
    const sidecar = await start({ SIDECAR_CONFIG: file, SPOOL_RETRY_INITIAL: '20ms', SPOOL_RETRY_MAX: '100ms' });
    try {
      await post(sidecar.relayPort!, '/h', 'to dev', { 'x-environment': 'dev', 'x-debug': '1' });
      await post(sidecar.relayPort!, '/h', 'to base', { 'x-environment': 'prod', 'x-debug': '1' });
      const [d] = await delivered(dev, 1);
      const [b] = await delivered(base, 1);
      expect([d.url, d.body.toString(), d.headers['x-dispatched'], d.headers['x-debug']]).toEqual(['/dev/h', 'to dev', 'true', undefined]);
      expect([b.url, b.body.toString(), b.headers['x-dispatched'], b.headers['x-debug']]).toEqual(['/base/h', 'to base', undefined, '1']);
      expect(await metric(sidecar, 'sidecar_dispatch_requests_total{rule="dev"}')).toBe(1);
    } finally {
      await sidecar.close();
      await dev.close();
      await base.close();
    }
  });
});

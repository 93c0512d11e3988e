import { Logger } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { RecordingServer } from './support/recording-server';
import { eventually, start } from './support/sidecar';
import { waitFor } from './support/wait-for';

/**
 * Webhook authenticity on the relay port, with the sidecar in this process and a recording
 * downstream: forged events are answered 401 and go nowhere (proxy, spool and dispatch),
 * valid ones are relayed as before, the secrets file is read again when it changes, and a
 * health-check event is no way around the check.
 */

type Started = Awaited<ReturnType<typeof start>>;

const NEW = 'the-new-secret-0001';
const OLD = 'the-old-secret-0002';

const dir = mkdtempSync(join(tmpdir(), 'webhook-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes the secrets file as a Kubernetes Secret volume updates it: a new file renamed over the old. */
function writeSecrets(file: string, text: string): void {
  writeFileSync(`${file}.next`, text);
  renameSync(`${file}.next`, file);
}

const hubSignature = (secret: string, body: Buffer) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** POSTs exact bytes; the answer's status and its body as text. */
function post(
  port: number,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // a downstream's plain answer
          }
          resolve({ status: res.statusCode!, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function metric(s: Started, series: string): Promise<number> {
  const text = (await request(s.managementUrl).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const payload = Buffer.from('{"action":"opened","pull_request":{"title":"caf\\u00e9 \u00e9 \\/path","id":12345678901234567890}}', 'utf8');

describe('webhook authenticity, proxy mode, WEBHOOK_SECRET_FILE', () => {
  const downstream = new RecordingServer();
  const file = join(dir, 'proxy-secrets');
  let sidecar: Started;
  let warn: jest.SpyInstance;

  beforeAll(async () => {
    await downstream.listen();
    writeSecrets(file, `${NEW}\n${OLD}\n`);
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: `${downstream.url}/hooks`, WEBHOOK_SECRET_FILE: file });
  });
  beforeEach(() => {
    warn = jest.spyOn(Logger.prototype, 'warn');
  });
  afterEach(() => warn.mockRestore());
  afterAll(async () => {
    await sidecar?.close();
    await downstream.close();
  });

  const port = () => Number(new URL(sidecar.relayUrl).port);

  it('relays a signed event byte for byte, with either line of the file', async () => {
    for (const [delivery, secret] of [
      ['ok-new', NEW],
      ['ok-old', OLD],
    ]) {
      const res = await post(port(), '/?x=1', payload, {
        'x-github-event': 'pull_request',
        'x-github-delivery': delivery,
        'x-hub-signature-256': hubSignature(secret, payload),
      });
      expect(res).toMatchObject({ status: 200, text: 'ok' });
      const got = downstream.requests.find((r) => r.headers['x-github-delivery'] === delivery)!;
      expect(got.body.equals(payload)).toBe(true);
      expect(got.headers['x-hub-signature-256']).toBe(hubSignature(secret, payload));
      expect(got.url).toBe('/hooks/?x=1');
    }
    expect(await metric(sidecar, 'sidecar_webhook_verified_total{sender="github"}')).toBeGreaterThanOrEqual(2);
  });

  it.each([
    ['no signature', {}, 'missing_signature'],
    ['a signature made with another secret', { 'x-hub-signature-256': hubSignature('not-the-secret', payload) }, 'bad_signature'],
    ['a signature that is not hex', { 'x-hub-signature-256': 'sha256=zz' }, 'malformed_signature'],
    ['sha1 only', { 'x-hub-signature': 'sha1=0123456789abcdef0123456789abcdef01234567' }, 'unsupported_scheme'],
  ])(
    'refuses an event with %s: 401 with the reason, nothing relayed, counted, one log line without the proof',
    async (_what, headers, reason) => {
      const before = downstream.requests.length;
      const counted = await metric(sidecar, `sidecar_webhook_rejected_total{reason="${reason}",sender="github"}`);
      const res = await post(port(), '/', payload, { 'x-github-event': 'push', ...headers });
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ error: reason, sender: 'github', message: expect.any(String) });
      expect(await metric(sidecar, `sidecar_webhook_rejected_total{reason="${reason}",sender="github"}`)).toBe(counted + 1);
      expect(await metric(sidecar, 'sidecar_relay_requests_total{outcome="unauthorized"}')).toBeGreaterThan(0);
      const lines = warn.mock.calls.filter(([m]) => (m as { msg?: string }).msg === 'webhook refused: no valid proof of origin');
      expect(lines).toHaveLength(1);
      expect(lines[0][0]).toMatchObject({ reason, sender: 'github', path: '/' });
      const logged = JSON.stringify(lines[0]);
      for (const v of Object.values(headers)) expect(logged).not.toContain(String(v).slice(7));
      expect(logged).not.toContain(NEW);
      expect(logged).not.toContain(OLD);
      // The service keeps serving: a valid event right after goes through.
      expect((await post(port(), '/', payload, { 'x-hub-signature-256': hubSignature(NEW, payload) })).status).toBe(200);
      expect(downstream.requests.length).toBe(before + 1);
    },
  );

  it('verifies a chunked body over the bytes as they arrived, pieces joined', async () => {
    const pieces = [payload.subarray(0, 7), payload.subarray(7, 40), payload.subarray(40)];
    const send = (sig: string, delivery: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: port(),
            method: 'POST',
            path: '/',
            headers: { 'transfer-encoding': 'chunked', 'x-hub-signature-256': sig, 'x-github-delivery': delivery },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('error', reject);
        for (const p of pieces) req.write(p);
        req.end();
      });
    expect(await send(hubSignature(NEW, payload), 'chunked-ok')).toBe(200);
    expect(downstream.requests.find((r) => r.headers['x-github-delivery'] === 'chunked-ok')!.body.equals(payload)).toBe(true);
    expect(await send(hubSignature(NEW, payload.subarray(7)), 'chunked-bad')).toBe(401);
    expect(downstream.requests.some((r) => r.headers['x-github-delivery'] === 'chunked-bad')).toBe(false);
  });

  it('answers 100 concurrent events, half forged, each as it deserves: exactly the signed ones relayed', async () => {
    const before = downstream.requests.length;
    const refusedBefore = await metric(sidecar, 'sidecar_webhook_rejected_total{reason="bad_signature",sender="github"}');
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const body = Buffer.from(`{"n":${i},"pad":"${'x'.repeat(i * 100)}"}`);
        const secret = i % 2 === 0 ? NEW : 'forger';
        return post(port(), '/', body, { 'x-github-delivery': `many-${i}`, 'x-hub-signature-256': hubSignature(secret, body) }).then(
          (r) => [i, r.status] as const,
        );
      }),
    );
    for (const [i, status] of results) expect({ i, status }).toEqual({ i, status: i % 2 === 0 ? 200 : 401 });
    const relayed = downstream.requests.slice(before).map((r) => Number(String(r.headers['x-github-delivery']).slice(5)));
    expect(relayed.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, k) => 2 * k));
    expect(await metric(sidecar, 'sidecar_webhook_rejected_total{reason="bad_signature",sender="github"}')).toBe(refusedBefore + 50);
  });

  it('says in the 401 and the log that a JSON body may have been re-serialised when its signature fails', async () => {
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(payload.toString('utf8'))));
    const res = await post(port(), '/', reserialised, { 'x-hub-signature-256': hubSignature(NEW, payload) });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ error: 'bad_signature', maybeReserialised: true });
    expect(res.json.message).toMatch(/re-serialis/);
    const line = warn.mock.calls.find(([m]) => (m as { msg?: string }).msg === 'webhook refused: no valid proof of origin')!;
    expect(line[0]).toMatchObject({ maybeReserialised: true });
  });

  it('refuses a forged health-check event (unsigned, or signed with another secret) and relays nothing; a signed one is answered as before', async () => {
    const before = downstream.requests.length;
    const healthBody = Buffer.from('{"type":"health-check","id":"forged"}');
    const unsigned = await post(port(), '/', healthBody, { 'x-health-check-id': 'forged' });
    expect(unsigned).toMatchObject({ status: 401, json: { error: 'missing_signature' } });
    const wrong = await post(port(), '/', healthBody, {
      'x-health-check-id': 'forged',
      'x-hub-signature-256': hubSignature('guess', healthBody),
    });
    expect(wrong).toMatchObject({ status: 401, json: { error: 'bad_signature' } });
    // A real event dressed as a health check, even validly signed, is answered here and never relayed.
    const dressed = await post(port(), '/', payload, { 'x-health-check-id': 'x', 'x-hub-signature-256': hubSignature(NEW, payload) });
    expect(dressed).toMatchObject({ status: 200, json: { received: 'foreign' } });
    expect(downstream.requests.length).toBe(before);
  });

  it('reads the file again when it changes: a line removed stops being accepted, a line added starts', async () => {
    writeSecrets(file, `${NEW}\n`);
    await waitFor(
      'the old secret to be refused',
      async () => (await post(port(), '/', payload, { 'x-hub-signature-256': hubSignature(OLD, payload) })).status === 401,
      { timeoutMs: 15_000 },
    );
    writeSecrets(file, 'the-third-secret-03\n');
    await waitFor(
      'the added secret to be accepted',
      async () =>
        (await post(port(), '/', payload, { 'x-hub-signature-256': hubSignature('the-third-secret-03', payload) })).status === 200,
      { timeoutMs: 15_000 },
    );
    expect((await post(port(), '/', payload, { 'x-hub-signature-256': hubSignature(NEW, payload) })).status).toBe(401);
  });

  it('keeps the last good secrets when the file is emptied', async () => {
    writeSecrets(file, '\n');
    // Give the poll time to see it (it logs the problem once).
    await waitFor(
      'the problem to be logged',
      () => warn.mock.calls.some(([m]) => (m as { msg?: string }).msg?.startsWith('webhook secrets file unusable')),
      { timeoutMs: 15_000 },
    );
    expect((await post(port(), '/', payload, { 'x-hub-signature-256': hubSignature('the-third-secret-03', payload) })).status).toBe(200);
  });
});

describe('webhook authenticity, spool mode, WEBHOOK_SECRET', () => {
  const downstream = new RecordingServer();
  let sidecar: Started;

  beforeAll(async () => {
    await downstream.listen();
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: downstream.url,
      RELAY_MODE: 'spool',
      SPOOL_PATH: mkdtempSync(join(dir, 'spool-')),
      SPOOL_RETRY_INITIAL: '20ms',
      SPOOL_RETRY_MAX: '100ms',
      WEBHOOK_SECRET: NEW,
    });
  });
  afterAll(async () => {
    await sidecar?.close();
    await downstream.close();
  });

  it('stores nothing of a forged event, and stores and delivers a signed one', async () => {
    const port = Number(new URL(sidecar.relayUrl).port);
    const forged = await post(port, '/', payload, { 'x-github-delivery': 'forged-1', 'x-hub-signature-256': hubSignature(OLD, payload) });
    expect(forged).toMatchObject({ status: 401, json: { error: 'bad_signature' } });
    expect((await request(sidecar.managementUrl).get('/spool')).body).toMatchObject({ events: 0 });

    const signed = await post(port, '/', payload, { 'x-github-delivery': 'signed-1', 'x-hub-signature-256': hubSignature(NEW, payload) });
    expect(signed.status).toBe(202);
    const got = await eventually(() => downstream.requests.find((r) => r.headers['x-github-delivery'] === 'signed-1'));
    expect(got.body.equals(payload)).toBe(true);
    expect(downstream.requests.some((r) => r.headers['x-github-delivery'] === 'forged-1')).toBe(false);
  });
});

describe('webhook authenticity with a secret per dispatch rule', () => {
  const downstream = new RecordingServer();
  let sidecar: Started;
  const gitlabToken = 'gitlab-token-of-rule';
  const ruleFile = join(dir, 'gitea-rule-secrets');

  beforeAll(async () => {
    await downstream.listen();
    writeSecrets(ruleFile, 'gitea-rule-secret\n');
    const config = join(dir, 'dispatch.yaml');
    writeFileSync(
      config,
      `dispatch:
  header: X-Route
  default: ${downstream.url}/default
  rules:
    gitlab:
      destination: ${downstream.url}/gitlab
      secret: ${gitlabToken}
    gitea:
      destination: ${downstream.url}/gitea
      secretFile: ${ruleFile}
    open:
      destination: ${downstream.url}/open
`,
    );
    sidecar = await start({ SIDECAR_CONFIG: config, WEBHOOK_SECRET: NEW });
  });
  afterAll(async () => {
    await sidecar?.close();
    await downstream.close();
  });

  it('shows in /status where the secrets come from and which rules have their own, never a secret', async () => {
    const res = await request(sidecar.managementUrl).get('/status');
    expect(res.body.features.webhookAuth).toBe(true);
    expect(res.body.webhookAuth).toEqual({ secret: 'variable', rulesWithOwnSecret: ['gitlab', 'gitea'], toleranceSeconds: 300 });
    expect(res.text).not.toContain(gitlabToken);
    expect(res.text).not.toContain(NEW);
  });

  it("verifies each rule's events with its own secret, and the others with WEBHOOK_SECRET", async () => {
    const port = Number(new URL(sidecar.relayUrl).port);
    const giteaSig = createHmac('sha256', 'gitea-rule-secret').update(payload).digest('hex');
    const cases: Array<[Record<string, string>, number, string | null]> = [
      [{ 'x-route': 'gitlab', 'x-gitlab-token': gitlabToken }, 200, '/gitlab/'],
      [{ 'x-route': 'gitlab', 'x-gitlab-token': NEW }, 401, null], // the global secret is not this rule's
      [{ 'x-route': 'gitea', 'x-gitea-signature': giteaSig }, 200, '/gitea/'],
      [{ 'x-route': 'gitea', 'x-hub-signature-256': hubSignature(NEW, payload) }, 401, null],
      [{ 'x-route': 'open', 'x-hub-signature-256': hubSignature(NEW, payload) }, 200, '/open/'],
      [{ 'x-route': 'open', 'x-gitlab-token': gitlabToken }, 401, null],
      [{ 'x-route': 'nobody', 'x-hub-signature-256': hubSignature(NEW, payload) }, 200, '/default/'],
      [{ 'x-route': 'nobody' }, 401, null],
    ];
    for (const [headers, status, path] of cases) {
      const before = downstream.requests.length;
      const res = await post(port, '/', payload, headers);
      expect({ headers, status: res.status }).toEqual({ headers, status });
      if (path === null) expect(downstream.requests.length).toBe(before);
      else expect(downstream.requests.at(-1)!.url).toBe(path);
    }
  });
});

describe('verification off (no secret configured)', () => {
  const downstream = new RecordingServer();
  let sidecar: Started;

  beforeAll(async () => {
    await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: downstream.url });
  });
  afterAll(async () => {
    await sidecar?.close();
    await downstream.close();
  });

  it('relays unsigned events as before and exposes no webhook metrics', async () => {
    const res = await post(Number(new URL(sidecar.relayUrl).port), '/', payload);
    expect(res.status).toBe(200);
    expect((await request(sidecar.managementUrl).get('/metrics')).text).not.toContain('sidecar_webhook_rejected_total');
    expect((await request(sidecar.managementUrl).get('/status')).body).toMatchObject({
      features: { webhookAuth: false },
      webhookAuth: null,
    });
  });
});

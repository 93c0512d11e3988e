import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GosmeeLikeClient } from './fixtures/gosmee-like-client';
import { SmeeChannelServer } from './fixtures/smee-channel-server';
import { RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';
import { SmeeClientProcess } from './support/smee-client-process';
import { waitFor } from './support/wait-for';

/**
 * Webhook authenticity through the whole chain: the smee-compatible channel server fixture,
 * a client, the sidecar (in this process) with WEBHOOK_SECRET set and its health check on,
 * and a recording downstream. Every payload below is signed as GitHub signs (HMAC-SHA256 of
 * the bytes posted to the channel); what matters is whether the bytes that reach the relay
 * are still the bytes that were signed.
 *
 * - The gosmee wire format carries the body base64-encoded (bodyB): every shape verifies.
 * - The npm smee-client (the real CLI, 5.x) receives the body parsed by the channel server
 *   and sends JSON.stringify of it: a shape verifies only when that gives back the same bytes.
 *   The table README "Which clients keep signatures valid" shows is this one, measured here.
 */

type Sidecar = Awaited<ReturnType<typeof start>>;

const SECRET = 'chain-secret-0001';
const SUCCESS = 'status=success\n';

/** Payload shapes as senders write them; `smeeClient`: whether a signature still verifies after the npm smee-client. */
const SHAPES: ReadonlyArray<{ name: string; body: string; smeeClient: boolean }> = [
  { name: 'compact JSON, ASCII (GitHub, GitLab)', body: '{"action":"opened","number":7,"sender":{"login":"octocat"}}', smeeClient: true },
  { name: 'non-ASCII as raw UTF-8', body: '{"title":"caf\u00e9 \u2713 \u65e5\u672c"}', smeeClient: true },
  { name: '<, >, & as themselves', body: '{"body":"a <b> & c"}', smeeClient: true },
  { name: 'non-ASCII escaped (\\u00e9)', body: '{"title":"caf\\u00e9"}', smeeClient: false },
  { name: '<, >, & escaped as Go does (\\u003c, Gitea, Forgejo)', body: '{"body":"a \\u003cb\\u003e \\u0026 c"}', smeeClient: false },
  { name: 'escaped slashes (\\/)', body: '{"url":"https:\\/\\/example.com\\/x"}', smeeClient: false },
  { name: 'integer above 2^53', body: '{"id":12345678901234567890}', smeeClient: false },
  { name: 'number with a written-out fraction (1.50, 1.0)', body: '{"amount":1.50,"ratio":1.0}', smeeClient: false },
  { name: 'exponent (1e3)', body: '{"n":1e3}', smeeClient: false },
  { name: 'key order: integer-like keys after others', body: '{"name":"x","10":"ten","2":"two"}', smeeClient: false },
  { name: 'key order: other keys kept as written', body: '{"zeta":1,"alpha":2,"mid":3}', smeeClient: true },
  { name: 'a key given twice', body: '{"a":1,"a":2}', smeeClient: false },
  { name: 'indented (Gitea, Forgejo)', body: '{\n  "action": "opened",\n  "number": 7\n}', smeeClient: false },
  { name: 'trailing newline', body: '{"action":"opened"}\n', smeeClient: false },
];

const sign = (body: Buffer) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

async function metric(sidecar: Sidecar, series: string): Promise<number> {
  const text = await (await fetch(`${sidecar.managementUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const rejected = (s: Sidecar) => metric(s, 'sidecar_relay_requests_total{outcome="unauthorized"}');

/** Posts one event to the channel and waits until it either reached downstream or was refused by the relay. */
async function through(
  channelServer: SmeeChannelServer,
  channel: string,
  sidecar: Sidecar,
  downstream: RecordingServer,
  delivery: string,
  body: Buffer,
  headers: Record<string, string>,
  describe: () => string,
) {
  const refusedBefore = await rejected(sidecar);
  const res = await fetch(channelServer.channelUrl(channel), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery, ...headers },
    body,
  });
  await res.arrayBuffer();
  return waitFor(
    `event ${delivery} to arrive or be refused`,
    async () => {
      const got = downstream.requests.find((r) => r.headers['x-github-delivery'] === delivery);
      if (got !== undefined) return { relayed: true as const, body: got.body };
      if ((await rejected(sidecar)) > refusedBefore) return { relayed: false as const };
      return undefined;
    },
    { timeoutMs: 10_000, describeLast: describe },
  );
}

const healthOf = (s: Sidecar) => readFile(s.config.sharedVolume.healthFilePath, 'utf8').catch(() => '');

describe.each(['gosmee', 'smee'] as const)('verification on, through the %s wire format', (format) => {
  const channel = `authChain${format}01`;
  const channelServer = new SmeeChannelServer({ keepAliveMs: 500, postAnswer: format });
  const downstream = new RecordingServer();
  let sidecar: Sidecar;
  let gosmee: GosmeeLikeClient | null = null;
  let smee: SmeeClientProcess | null = null;
  const clientOutput = () => (smee ? smee.output : JSON.stringify(gosmee?.errors ?? []));

  beforeAll(async () => {
    await channelServer.listen();
    await downstream.listen();
    sidecar = await start({
      DOWNSTREAM_SERVICE_URL: downstream.url,
      SMEE_CHANNEL_URL: channelServer.channelUrl(channel),
      HEALTH_CHECK_INTERVAL_SECONDS: '1',
      HEALTH_CHECK_TIMEOUT_SECONDS: '2',
      WEBHOOK_SECRET: SECRET,
    });
    if (format === 'gosmee') {
      gosmee = new GosmeeLikeClient(channelServer.channelUrl(channel), sidecar.relayUrl);
      await gosmee.start();
    } else {
      smee = new SmeeClientProcess(channelServer.channelUrl(channel), sidecar.relayUrl);
      smee.start();
      await waitFor('smee-client to subscribe', () => channelServer.subscriberCount(channel, 'smee') === 1, {
        timeoutMs: 10_000,
        describeLast: () => smee!.output,
      });
    }
  });

  afterAll(async () => {
    await gosmee?.stop();
    await smee?.stop();
    await sidecar?.close();
    await channelServer.close();
    await downstream.close();
  });

  it("passes the sidecar's own signed health-check events: the status file reports success", async () => {
    await waitFor('a successful health check', async () => (await healthOf(sidecar)).startsWith(SUCCESS), {
      timeoutMs: 15_000,
      describeLast: clientOutput,
    });
    expect(await metric(sidecar, 'sidecar_webhook_rejected_total{reason="missing_signature",sender="unknown"}')).toBe(0);
    expect(
      channelServer.posts
        .filter((p) => p.headers['x-health-check-id'] !== undefined)
        .every((p) => typeof p.headers['x-hub-signature-256'] === 'string'),
    ).toBe(true);
  });

  it('refuses an event posted to the channel without a valid signature: nothing reaches downstream', async () => {
    const body = Buffer.from('{"action":"forged"}');
    const unsigned = await through(channelServer, channel, sidecar, downstream, `${format}-forged-1`, body, {}, clientOutput);
    expect(unsigned.relayed).toBe(false);
    const wrong = await through(
      channelServer,
      channel,
      sidecar,
      downstream,
      `${format}-forged-2`,
      body,
      { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
      clientOutput,
    );
    expect(wrong.relayed).toBe(false);
    expect(downstream.requests.filter((r) => String(r.headers['x-github-delivery']).includes('forged'))).toEqual([]);
  });

  it(`relays a signed event ${format === 'gosmee' ? 'of every payload shape, byte for byte' : 'only when JSON.stringify gives back the signed bytes (the measured table)'}`, async () => {
    const measured: Array<{ name: string; verified: boolean }> = [];
    for (const [i, shape] of SHAPES.entries()) {
      const body = Buffer.from(shape.body, 'utf8');
      const r = await through(
        channelServer,
        channel,
        sidecar,
        downstream,
        `${format}-shape-${i}`,
        body,
        { 'x-hub-signature-256': sign(body) },
        clientOutput,
      );
      if (r.relayed) expect(r.body.equals(body)).toBe(true);
      measured.push({ name: shape.name, verified: r.relayed });
    }
    const expected = SHAPES.map((s) => ({ name: s.name, verified: format === 'gosmee' ? true : s.smeeClient }));
    expect(measured).toEqual(expected);
  });

  if (format === 'smee') {
    it('answers the re-serialised event with a 401 that says the client may have re-serialised it', async () => {
      // The relay's answer goes to smee-client, which only logs the status: ask the relay directly with the same bytes.
      const original = Buffer.from('{"id":12345678901234567890}');
      const reserialised = Buffer.from(JSON.stringify(JSON.parse(original.toString())));
      const res = await fetch(sidecar.relayUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(original) },
        body: reserialised,
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'bad_signature', maybeReserialised: true });
    });
  }
});

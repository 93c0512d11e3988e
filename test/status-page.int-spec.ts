import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { ChromiumPage, HeadlessChromium } from './support/chromium';
import { LoopbackChannel } from './support/loopback-channel';
import { RecordingServer } from './support/recording-server';
import { RedisServer } from './support/redis-server';
import { eventually, freePort, start } from './support/sidecar';
import { teardown } from './support/teardown';

/** Screenshots of the page land here (gitignored), for a person to look at after a run. */
const ARTIFACTS = join(__dirname, '..', 'test-artifacts');

// Values that must never reach the page or /status: credentials, a token in a destination's query, a body.
const TOKEN = 'mgmt-token-0123456789abcdef';
const PASSWORD = 'rw-password-never-shown';
const QUERY_TOKEN = 'query-token-never-shown';
const BODY_MARKER = 'body-marker-never-shown';
const WEBHOOK_SECRET = 'webhook-secret-never-shown';
/** GitHub's proof of origin for a body. */
const signed = (body: string) => ({ 'x-hub-signature-256': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}` });

type Started = Awaited<ReturnType<typeof start>>;
type Status = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function post(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the status page (GET / on the management port) in headless Chromium', () => {
  const channel = new LoopbackChannel();
  const downstream = new RecordingServer();
  const receiver = new RecordingServer();
  const redis = new RedisServer();
  let sidecar: Started;
  let browser: HeadlessChromium;

  beforeAll(async () => {
    const relayPort = await freePort();
    channel.target = `http://127.0.0.1:${relayPort}`;
    const channelUrl = await channel.listen();
    await downstream.listen();
    receiver.respond = (_req, res) => res.writeHead(204).end();
    await receiver.listen();
    await redis.start();
    const dir = mkdtempSync(join(tmpdir(), 'status-page-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(
      join(dir, 'sidecar.yaml'),
      [
        'dispatch:',
        '  header: X-Env',
        `  default: ${downstream.url}/hook`,
        '  rules:',
        // Nothing listens on port 9 of loopback: these events fail, then become dead letters.
        `    lost: { destination: "http://127.0.0.1:9/hook?token=${QUERY_TOKEN}" }`,
        '',
      ].join('\n'),
    );
    [sidecar, browser] = await Promise.all([
      start({
        SIDECAR_CONFIG: join(dir, 'sidecar.yaml'),
        RELAY_PORT: String(relayPort),
        RELAY_MODE: 'spool',
        SPOOL_MAX_AGE: '1s',
        SPOOL_RETRY_INITIAL: '100ms',
        SPOOL_RETRY_MAX: '200ms',
        SMEE_CHANNEL_URL: channelUrl,
        HEALTH_CHECK_INTERVAL_SECONDS: '0.3',
        HEALTH_CHECK_TIMEOUT_SECONDS: '2',
        AGENT_PORT: String(await freePort()),
        UPSTREAM_HEALTH_URLS: `${downstream.url}/health`,
        POLLING_INTERVAL: '0.3',
        STATUS_INITIAL: 'drain',
        MONITOR_PORT: String(relayPort),
        REFRESH_RATE_SECONDS: '0.5',
        PROMETHEUS_REMOTE_WRITE_URL: `${receiver.url}/api/v1/write`,
        PUSH_INTERVAL: '500ms',
        REMOTE_WRITE_USERNAME: 'pusher',
        REMOTE_WRITE_PASSWORD: PASSWORD,
        ENABLE_PPROF: 'true',
        MANAGEMENT_TOKEN_FILE: join(dir, 'token'),
        WEBHOOK_SECRET,
        REDIS_URL: redis.url,
      }),
      HeadlessChromium.launch(),
    ]);

    // Some history to show: successes, a failed check (the smee server answers 500), successes again.
    const history = async () =>
      ((await request(sidecar.managementUrl).get('/status')).body as Status).healthCheck.history as Array<{ status: string }>;
    await eventually(
      async () => ((await history()).filter((h) => h.status === 'success').length >= 2 ? true : undefined),
      20_000,
      'two successful checks',
    );
    channel.status = 500;
    await eventually(async () => ((await history()).at(-1)?.status === 'failure' ? true : undefined), 20_000, 'a failed check');
    channel.status = 200;
    await eventually(async () => ((await history()).at(-1)?.status === 'success' ? true : undefined), 20_000, 'a successful check again');

    // Relayed events, some to the dead destination; and the remote-write receiver has taken a push.
    const event = (i: number) => JSON.stringify({ marker: BODY_MARKER, i });
    for (let i = 0; i < 5; i++) expect(await post(`${sidecar.relayUrl}/hook`, { 'x-env': 'dev', ...signed(event(i)) }, event(i))).toBe(202);
    for (let i = 5; i < 7; i++)
      expect(await post(`${sidecar.relayUrl}/hook`, { 'x-env': 'lost', ...signed(event(i)) }, event(i))).toBe(202);
    // And a forged one, refused at the edge.
    expect(await post(`${sidecar.relayUrl}/hook`, { 'x-env': 'dev', ...signed('something else') }, event(9))).toBe(401);
    await eventually(
      async () => {
        const s = (await request(sidecar.managementUrl).get('/status')).body as Status;
        return s.spool.deadLetters === 2 && s.spool.events === 0 && s.remoteWrite.lastSuccessAt !== null && s.connections !== null
          ? true
          : undefined;
      },
      20_000,
      'two dead letters, the rest delivered, a push accepted',
    );
  }, 90_000);

  afterAll(() =>
    teardown(
      () => browser?.close(),
      () => sidecar?.close(),
      () => Promise.all([channel.close(), downstream.close(), receiver.close(), redis.close()]),
    ),
  );

  /** Opens the page and waits until it has rendered a /status answer; returns that answer as the page received it. */
  async function openPage(viewport: { width: number; height: number; mobile?: boolean }): Promise<{ page: ChromiumPage; shown: Status }> {
    const page = await browser.open(`${sidecar.managementUrl}/`, viewport);
    const time = await eventually(
      () => page.evaluate<string | null>('document.body.getAttribute("data-status-time")').then((t) => t ?? undefined),
      15_000,
      'the page to render /status',
    );
    let shown: Status | undefined;
    for (const r of page.responses.filter((x) => new URL(x.url).pathname === '/status')) {
      const body = JSON.parse(await page.responseBody(r.requestId)) as Status;
      if (body.time === time) shown = body;
    }
    if (!shown) throw new Error(`no /status answer with time ${time} among ${page.responses.map((r) => r.url).join(', ')}`);
    return { page, shown };
  }

  const text = (page: ChromiumPage, selector: string) =>
    page.evaluate<string | null>(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? null`);

  it('shows every feature that is on, and what /status said, with no console error; keeps a screenshot', async () => {
    const { page, shown } = await openPage({ width: 1280, height: 900 });
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'status-page-desktop.png'), await page.screenshot());

    expect(page.console.filter((p) => p.level === 'error' || p.level === 'warning')).toEqual([]);
    expect(await page.evaluate('[...document.querySelectorAll("section")].map((s) => s.dataset.feature)')).toEqual([
      'healthCheck',
      'relay',
      'dispatch',
      'webhookAuth',
      'coordination',
      'spool',
      'agent',
      'connections',
      'remoteWrite',
    ]);

    // Health check: state, last round trip, and one bar per check of the history, failures in red.
    const hc = shown.healthCheck;
    expect(await text(page, '[data-feature=healthCheck] .badge')).toBe(hc.status);
    expect(await text(page, '[data-field="healthCheck.message"]')).toBe(hc.message);
    expect(await text(page, '[data-field="healthCheck.roundTripMs"]')).toBe(`${hc.roundTripMs} ms`);
    const bars = await page.evaluate<Array<{ cls: string; ms: string }>>(
      '[...document.querySelectorAll("[data-field=\'healthCheck.history\'] rect")].map((r) => ({ cls: r.getAttribute("class"), ms: r.dataset.roundTripMs }))',
    );
    expect(bars).toEqual(
      hc.history.map((h: Status) => ({
        cls: h.status === 'success' ? 'ok' : 'bad',
        ms: h.status === 'success' ? String(h.roundTripMs) : '',
      })),
    );
    expect(bars.some((b) => b.cls === 'bad')).toBe(true);
    const times = (hc.history as Status[])
      .filter((h) => h.status === 'success')
      .map((h) => h.roundTripMs as number)
      .sort((a, b) => a - b);
    const shownMs = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(n >= 10_000 ? 0 : 1)} s` : `${n} ms`);
    expect(await text(page, '[data-field="healthCheck.historySummary"]')).toBe(
      `${times.length} ok, ${hc.history.length - times.length} failed; median ${shownMs(times[Math.floor((times.length - 1) / 2)])}, longest ${shownMs(times.at(-1)!)}`,
    );

    // Relay: requests by outcome (those that happened) and the latency table.
    const rows = await page.evaluate<string[][]>(
      '[...document.querySelectorAll("[data-field=\'relay.requests\'] tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))',
    );
    const outcomes = Object.entries(shown.relay.requests as Record<string, number>).filter(([, n]) => n > 0);
    expect(rows).toEqual(outcomes.map(([k, n]) => [k, n.toLocaleString('en')]));
    expect(rows).toContainEqual(['spooled', '7']);
    const latency = await page.evaluate<string[][]>(
      '[...document.querySelectorAll("[data-field=\'relay.latency\'] tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))',
    );
    expect(latency.map((r) => [r[0], r[1]])).toEqual(
      Object.entries(shown.relay.latency as Record<string, { count: number }>)
        .sort()
        .map(([k, l]) => [k, String(l.count)]),
    );

    // Dispatch rules, the spool, the agent, connections, remote write.
    expect(await text(page, '[data-field="dispatch.rules"]')).toBe(shown.dispatch.rules.join(', '));
    expect(await text(page, '[data-field="webhookAuth.secret"]')).toBe('variable');
    expect(await text(page, '[data-field="webhookAuth.refused"]')).toBe(String(shown.relay.requests.unauthorized));
    expect(shown.relay.requests.unauthorized).toBe(1);
    expect(shown.coordination.state).toBe('coordinating');
    expect(await text(page, '[data-field="coordination.replica"]')).toBe(shown.coordination.replica);
    expect(await text(page, '[data-field="coordination.delivering"]')).toBe(String(shown.coordination.delivering));
    expect(await text(page, '[data-field="spool.events"]')).toBe(String(shown.spool.events));
    expect(await text(page, '[data-field="spool.deadLetters"]')).toBe(String(shown.spool.deadLetters));
    expect(await text(page, '[data-feature=spool] .badge')).toBe('dead letters');
    expect(await text(page, '[data-field="agent.weight"]')).toBe(shown.agent.weight);
    expect(await text(page, '[data-field="agent.agentMessage"]')).toBe(shown.agent.agentMessage);
    expect(await page.evaluate('[...document.querySelectorAll("[data-field=\'agent.reasons\'] li")].map((li) => li.textContent)')).toEqual(
      shown.agent.reasons,
    );
    expect(shown.agent.reasons).toContain('status file says drain');
    expect(await text(page, '[data-feature=agent] .badge')).toBe(`${shown.agent.healthy ? 'up' : 'down'} · ${shown.agent.status}`);
    expect(await text(page, '[data-field="connections.active_connections"]')).toBe(String(shown.connections.active_connections));
    expect(await text(page, '[data-field="remoteWrite.queueLength"]')).toBe(String(shown.remoteWrite.queueLength));
    expect(await text(page, '[data-field="remoteWrite.lag"]')).toMatch(/^[\d.]+ s ago$/);

    // No secret, no body: neither in what the page shows nor in the JSON behind it.
    const everything = `${await page.evaluate<string>('document.documentElement.outerHTML')}\n${JSON.stringify(shown)}`;
    for (const secret of [TOKEN, PASSWORD, QUERY_TOKEN, BODY_MARKER, WEBHOOK_SECRET]) expect(everything).not.toContain(secret);
  });

  it('fits a phone screen without sideways scrolling', async () => {
    const { page } = await openPage({ width: 390, height: 844, mobile: true });
    writeFileSync(join(ARTIFACTS, 'status-page-phone.png'), await page.screenshot());
    expect(page.console.filter((p) => p.level === 'error' || p.level === 'warning')).toEqual([]);
    const widths = await page.evaluate<{ scroll: number; client: number }>(
      '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
    );
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
  });

  it('refreshes itself, and says so when /status cannot be reached, keeping the last figures', async () => {
    const { page } = await openPage({ width: 800, height: 600 });
    // The page's own fetch, made to fail: at its next refresh the banner appears, the sections stay.
    await page.evaluate('window.fetch = () => Promise.reject(new Error("network down")), true');
    const banner = await eventually(
      () =>
        page
          .evaluate<string | null>('document.getElementById("problem").hidden ? null : document.getElementById("problem").textContent')
          .then((t) => t ?? undefined),
      20_000,
      'the banner',
    );
    expect(banner).toBe('Cannot refresh (network down); the figures below may be stale.');
    expect(await page.evaluate('document.querySelectorAll("section").length')).toBe(9);
  });

  it('answers text/html with a policy that allows only its own script and style, to anyone (no token), like /status', async () => {
    const res = await request(sidecar.managementUrl).get('/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toMatch(
      /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+='; style-src 'sha256-[A-Za-z0-9+/]+='; connect-src 'self'/,
    );
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).not.toMatch(/\b(src|href)="(https?:)?\/\//);
    expect((await request(sidecar.managementUrl).head('/')).status).toBe(200);
  });
});

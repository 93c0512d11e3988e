import { readFileSync } from 'node:fs';
import { createServer, Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { freePort } from './support/sidecar';
import { killLeftover, spawnSidecar, SidecarProcess } from './support/process';
import { makeTestCa, TestCa } from './support/test-ca';

/** An https:// destination: verified against the system's CAs (plus NODE_EXTRA_CA_CERTS), by its host name. */
describe('relay to an https destination (built process)', () => {
  let tls: TestCa;
  let server: Server;
  const received: Array<{ url: string; body: string }> = [];
  let running: SidecarProcess | undefined;

  beforeAll(async () => {
    tls = makeTestCa();
    server = createServer({ key: readFileSync(tls.serverKey), cert: readFileSync(tls.serverCert) }, (req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ url: req.url!, body });
        res.end('over tls');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  afterEach(() => killLeftover(running));

  async function relayTo(extraEnv: Record<string, string>): Promise<{ status: number; text: string }> {
    const relayPort = await freePort();
    running = spawnSidecar({
      DOWNSTREAM_SERVICE_URL: `https://localhost:${(server.address() as AddressInfo).port}/hook`,
      RELAY_PORT: String(relayPort),
      MANAGEMENT_PORT: String(await freePort()),
      ...extraEnv,
    });
    await running.ready;
    const res = await fetch(`http://127.0.0.1:${relayPort}/push`, { method: 'POST', body: '{"n":1}' });
    return { status: res.status, text: await res.text() };
  }

  it('relays through TLS to a destination whose certificate chains to a trusted CA', async () => {
    expect(await relayTo({ NODE_EXTRA_CA_CERTS: tls.ca })).toEqual({ status: 200, text: 'over tls' });
    expect(received).toEqual([{ url: '/hook/push', body: '{"n":1}' }]);
  });

  it('refuses a destination whose certificate it cannot verify: 502, nothing sent', async () => {
    received.length = 0;
    const res = await relayTo({});
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text).message).toMatch(/certificate/i);
    expect(received).toEqual([]);
  });
});

import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { singleRoute } from '../dispatch/dispatch-table';
import { DeliveryClient } from './delivery-client';
import type { EventMeta } from './spool-record';

const meta = (over: Partial<EventMeta> = {}): EventMeta => ({
  id: 'e1',
  seq: 1,
  method: 'POST',
  url: '/hook?x=1',
  headers: ['Host', 'relay:8080', 'X-GitHub-Delivery', 'd-1', 'Content-Type', 'application/json'],
  client: '10.0.0.9',
  receivedAt: 0,
  queuedAt: 0,
  route: 'default',
  deliveryId: 'd-1',
  ...over,
});

describe('DeliveryClient (a spooled event sent to its destination)', () => {
  let server: Server;
  let port: number;
  let handler: Parameters<typeof createServer>[1];
  const seen: Array<{ method?: string; url?: string; headers: Record<string, string | string[] | undefined>; body: string }> = [];
  let client: DeliveryClient;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        handler!(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    seen.length = 0;
    client = new DeliveryClient(500, 2);
  });
  afterEach(() => client.close());

  const route = () => singleRoute(new URL(`http://127.0.0.1:${port}/base`));

  it('sends the event as the proxy would and gives the status and Retry-After', async () => {
    handler = (_q, res) => res.writeHead(503, { 'retry-after': '7' }).end('busy');
    const result = await client.send(route(), meta(), Buffer.from('{"a":1}'), new AbortController().signal);
    expect(result).toEqual({ answered: true, status: 503, retryAfter: '7' });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/base/hook?x=1', body: '{"a":1}' });
    expect(seen[0].headers).toMatchObject({
      host: `127.0.0.1:${port}`,
      'x-github-delivery': 'd-1',
      'x-forwarded-for': '10.0.0.9',
      'x-forwarded-host': 'relay:8080',
      'content-length': '7',
    });
  });

  it('settles on the status without waiting for a long answer body, and drops the connection past 64 KiB', async () => {
    handler = (_q, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(200 * 1024));
    };
    expect(await client.send(route(), meta(), Buffer.from('x'), new AbortController().signal)).toEqual({
      answered: true,
      status: 200,
      retryAfter: undefined,
    });
  });

  it('reports a destination that refuses connections, with the system error code', async () => {
    const closed = singleRoute(new URL('http://127.0.0.1:1/'));
    const result = await client.send(closed, meta(), Buffer.from('x'), new AbortController().signal);
    expect(result).toMatchObject({ answered: false, timedOut: false, aborted: false, error: expect.stringContaining('ECONNREFUSED') });
  });

  it('reports a destination that sends nothing within the timeout as timed out', async () => {
    handler = () => undefined;
    const result = await client.send(route(), meta(), Buffer.from('x'), new AbortController().signal);
    expect(result).toMatchObject({ answered: false, timedOut: true, aborted: false });
  });

  it('stops when aborted (shutdown), and says so', async () => {
    handler = () => undefined;
    const abort = new AbortController();
    const pending = client.send(route(), meta(), Buffer.from('x'), abort.signal);
    setTimeout(() => abort.abort(), 50);
    expect(await pending).toMatchObject({ answered: false, aborted: true });
  });
});

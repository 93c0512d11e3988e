import { createHmac, randomBytes } from 'node:crypto';
import { SmeeChannelServer } from './fixtures/smee-channel-server';
import { spawnSidecar, SidecarProcess } from './support/process';
import { RecordingServer } from './support/recording-server';
import { RedisServer } from './support/redis-server';
import { freePort } from './support/sidecar';
import { SmeeClientProcess } from './support/smee-client-process';
import { waitFor } from './support/wait-for';
import { teardown } from './support/teardown';

/**
 * High availability on Redis, with real peers only: a real redis-server, three built
 * sidecar processes, each fed by its own real smee-client on one channel of the channel
 * server fixture (which broadcasts every event to every client, as smee.io does), and one
 * recording downstream. Every event is a signed GitHub webhook with its own delivery id.
 */

const SECRET = 'it-is-a-secret';

interface Replica {
  sidecar: SidecarProcess;
  client: SmeeClientProcess;
  relayPort: number;
  managementPort: number;
}

function webhook(n: number, tag: string) {
  const body = Buffer.from(JSON.stringify({ action: 'opened', number: n, tag, pad: randomBytes(64).toString('hex') }));
  const id = `${tag}-${n}-${randomBytes(6).toString('hex')}`;
  return {
    id,
    body,
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'pull_request',
      'x-github-delivery': id,
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    },
  };
}

async function metrics(r: Replica): Promise<string> {
  return (await fetch(`http://127.0.0.1:${r.managementPort}/metrics`)).text();
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function status(r: Replica): Promise<{ coordination: { state: string; held: number; delivering: number } }> {
  return (await fetch(`http://127.0.0.1:${r.managementPort}/status`)).json() as never;
}

const outcome = (o: string) => `sidecar_coordination_events_total{outcome="${o}"}`;
const duplicates = (reason: string) => `sidecar_coordination_possible_duplicates_total{reason="${reason}"}`;

describe('three replicas behind one smee channel, coordinated through a real redis-server', () => {
  const redis = new RedisServer();
  const channels = new SmeeChannelServer({ keepAliveMs: 1_000 });
  const downstream = new RecordingServer();
  let replicas: Replica[] = [];

  beforeAll(async () => {
    await redis.start();
    await channels.listen();
    await downstream.listen();
  });

  afterAll(() =>
    teardown(
      () => channels.close(),
      () => downstream.close(),
      () => redis.close(),
    ),
  );

  afterEach(async () => {
    for (const r of replicas) {
      await r.client.stop();
      if (r.sidecar.proc.exitCode === null && r.sidecar.proc.signalCode === null) {
        r.sidecar.proc.kill('SIGKILL');
        await r.sidecar.exited;
      }
    }
    replicas = [];
    downstream.requests.length = 0;
    downstream.respond = (_req, res) => res.end('ok');
    if (!(await redis.ping())) await redis.start();
  });

  /** One replica, started again on other ports should a port taken a moment ago be in use by then. */
  async function startReplica(
    channel: string,
    lease: string,
    timeout: string,
    extra: Record<string, string>,
    attempts = 3,
  ): Promise<Replica> {
    const relayPort = await freePort();
    const managementPort = await freePort();
    const sidecar = spawnSidecar({
      DOWNSTREAM_SERVICE_URL: `${downstream.url}/webhook`,
      RELAY_PORT: String(relayPort),
      MANAGEMENT_PORT: String(managementPort),
      REDIS_URL: redis.url,
      REDIS_LEASE: lease,
      REDIS_TIMEOUT: timeout,
      ...extra,
    });
    const started = await Promise.race([sidecar.ready.then(() => true), sidecar.exited.then(() => false)]);
    if (started)
      return {
        sidecar,
        client: new SmeeClientProcess(channels.channelUrl(channel), `http://127.0.0.1:${relayPort}/webhook`),
        relayPort,
        managementPort,
      };
    const why = `${sidecar.stderr()} ${sidecar.lines.join('\n')}`;
    if (attempts > 1 && why.includes('EADDRINUSE')) return startReplica(channel, lease, timeout, extra, attempts - 1);
    throw new Error(`sidecar exited: ${why}`);
  }

  /** Starts three replicas and their clients, then sends one warm-up event through all of them (a cold process's first delivery is slow). */
  async function startReplicas(channel: string, lease: string, timeout: string, extra: Record<string, string> = {}): Promise<void> {
    replicas.push(...(await Promise.all([0, 1, 2].map(() => startReplica(channel, lease, timeout, extra)))));
    for (const r of replicas) {
      expect((await status(r)).coordination.state).toBe('coordinating');
      r.client.start();
    }
    await waitFor('three smee-clients subscribed', () => channels.subscriberCount(channel) === 3, {
      timeoutMs: 15_000,
      describeLast: () => replicas.map((r) => r.client.output).join('\n'),
    });
    const warmUp = [webhook(0, `${channel}-warm-up`)];
    await send(channel, warmUp, 1);
    await allDelivered(warmUp, replicas, 20_000);
    downstream.requests.length = 0;
    baseline = await Promise.all(replicas.map(metrics));
  }

  let baseline: string[] = [];

  /** A counter's increase since the warm-up, summed over `live` replicas (by their index in `replicas`). */
  async function increase(series: string, live = replicas): Promise<number> {
    let sum = 0;
    for (const r of live) sum += sample(await metrics(r), series) - sample(baseline[replicas.indexOf(r)], series);
    return sum;
  }

  /** Posts the webhooks to the channel, `concurrency` at a time; `at(n)` runs once n have been posted. */
  async function send(
    channel: string,
    events: ReturnType<typeof webhook>[],
    concurrency: number,
    at: Record<number, () => Promise<void>> = {},
  ): Promise<void> {
    let next = 0;
    let posted = 0;
    const worker = async () => {
      while (next < events.length) {
        const e = events[next++];
        const res = await fetch(channels.channelUrl(channel), { method: 'POST', headers: e.headers, body: e.body });
        expect(res.status).toBe(200);
        posted++;
        const hook = at[posted];
        if (hook !== undefined) {
          delete at[posted];
          await hook();
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  function arrivals(): Map<string, number> {
    const seen = new Map<string, number>();
    for (const r of downstream.requests) {
      const id = String(r.headers['x-github-delivery']);
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    return seen;
  }

  async function allDelivered(events: ReturnType<typeof webhook>[], live: Replica[], timeoutMs: number): Promise<Map<string, number>> {
    await waitFor('every event delivered', () => events.every((e) => arrivals().has(e.id)), {
      timeoutMs,
      describeLast: () => `${events.filter((e) => !arrivals().has(e.id)).length} missing`,
    });
    // Settled: nothing held or being delivered anywhere, so that no late duplicate is still to come.
    await waitFor(
      'every replica settled',
      async () => {
        for (const r of live) {
          const c = (await status(r)).coordination;
          if (c.held !== 0 || c.delivering !== 0) return false;
        }
        return true;
      },
      { timeoutMs: 15_000 },
    );
    return arrivals();
  }

  it('100 signed webhooks, each delivered exactly once, whichever replica delivered it', async () => {
    const channel = 'haExactlyOnce';
    // Each replica's health check posts to the same channel, so every replica receives
    // every replica's health events: they must stay out of coordination.
    await startReplicas(channel, '10s', '2s', {
      SMEE_CHANNEL_URL: channels.channelUrl(channel),
      HEALTH_CHECK_INTERVAL_SECONDS: '1',
      HEALTH_CHECK_TIMEOUT_SECONDS: '5',
    });
    const events = Array.from({ length: 100 }, (_, n) => webhook(n, 'once'));
    await send(channel, events, 4);
    const seen = await allDelivered(events, replicas, 30_000);
    expect([...seen.values()].filter((n) => n !== 1)).toEqual([]);
    expect(seen.size).toBe(100);
    // Body and signature arrive as sent.
    for (const r of downstream.requests) {
      expect(r.headers['x-hub-signature-256']).toBe(`sha256=${createHmac('sha256', SECRET).update(r.body).digest('hex')}`);
    }
    expect(await increase(outcome('delivering'))).toBe(100);
    // The two replicas that did not deliver an event held it (until confirmed) or found it delivered already.
    expect((await increase(outcome('held'))) + (await increase(outcome('already_delivered')))).toBe(200);
    expect(await increase(outcome('confirmed'))).toBe(await increase(outcome('held')));
    expect(await increase(outcome('uncoordinated'))).toBe(0);
    expect((await increase(duplicates('lease_lapsed'))) + (await increase(duplicates('redis_unavailable')))).toBe(0);
    // Health checks: each replica completed its own, through its own client...
    for (const r of replicas) {
      await waitFor(
        'a health check round trip on every replica',
        async () => sample(await metrics(r), 'sidecar_health_events_total{origin="own"}') > 0,
        { timeoutMs: 15_000 },
      );
      expect(sample(await metrics(r), 'health_check')).toBe(1);
      // ...and answered the other replicas' as theirs.
      await waitFor(
        "another replica's health event",
        async () => sample(await metrics(r), 'sidecar_health_events_total{origin="foreign"}') > 0,
        { timeoutMs: 15_000 },
      );
    }
    expect(downstream.requests.filter((req) => req.headers['x-health-check-id'] !== undefined)).toEqual([]);
    // What callers get: the delivering replica passes the destination's answer on; the
    // others answer 202 with JSON saying why they did not deliver.
    const again = webhook(1000, 'direct');
    const direct = (r: Replica) =>
      fetch(`http://127.0.0.1:${r.relayPort}/webhook`, { method: 'POST', headers: again.headers, body: again.body });
    const first = await direct(replicas[0]);
    expect([first.status, await first.text()]).toEqual([200, 'ok']);
    const second = await direct(replicas[1]);
    expect(second.status).toBe(202);
    expect(await second.json()).toMatchObject({ coordination: 'already_delivered' });
    const slow = webhook(1001, 'direct');
    downstream.respond = (_req, res) => void setTimeout(() => res.end('slow ok'), 500);
    const post = (r: Replica) =>
      fetch(`http://127.0.0.1:${r.relayPort}/webhook`, { method: 'POST', headers: slow.headers, body: slow.body });
    const winner = post(replicas[1]);
    await waitFor('the claim', async () => (await status(replicas[1])).coordination.delivering === 1, { everyMs: 5 });
    const held = await post(replicas[2]);
    expect(held.status).toBe(202);
    expect(await held.json()).toMatchObject({ coordination: 'held' });
    expect(await (await winner).text()).toBe('slow ok');
    await waitFor('the held copy confirmed', async () => (await status(replicas[2])).coordination.held === 0);
    expect(downstream.requests.filter((r) => r.headers['x-github-delivery'] === slow.id).length).toBe(1);
  });

  it('one replica kill -9ed in the middle of the stream: all 100 delivered, duplicates only as counted', async () => {
    const channel = 'haKillOne';
    await startReplicas(channel, '4s', '1s');
    // A downstream that takes a moment, so that the kill finds the victim delivering.
    downstream.respond = (_req, res) => void setTimeout(() => res.end('ok'), 100);
    const events = Array.from({ length: 100 }, (_, n) => webhook(n, 'kill'));
    const victim = replicas[0];
    await send(channel, events, 4, {
      50: async () => {
        await waitFor('the victim in the middle of a delivery', async () => (await status(victim)).coordination.delivering > 0, {
          timeoutMs: 15_000,
          everyMs: 5,
        });
        victim.sidecar.proc.kill('SIGKILL');
        await victim.sidecar.exited;
        await victim.client.stop();
      },
    });
    const live = replicas.slice(1);
    const seen = await allDelivered(events, live, 40_000);
    expect(seen.size).toBe(100);
    const again = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    // What the victim was delivering when it died was taken over once its claim lapsed...
    expect(await increase(outcome('taken_over'), live)).toBeGreaterThan(0);
    // ...and each extra delivery is one of those (or, on a machine so loaded that Redis
    // missed REDIS_TIMEOUT, one delivered without coordination), counted.
    expect(again).toBeLessThanOrEqual(
      (await increase(duplicates('lease_lapsed'), live)) + (await increase(duplicates('redis_unavailable'), live)),
    );
  });

  it('redis-server killed and started again mid-stream: nothing lost, the outage shown and counted, coordination back after', async () => {
    const channel = 'haRedisRestart';
    await startReplicas(channel, '4s', '1s');
    const events = Array.from({ length: 100 }, (_, n) => webhook(n, 'redis'));
    await send(channel, events, 2, {
      30: async () => {
        await redis.stop();
        await waitFor('a replica to show the outage', async () => (await status(replicas[1])).coordination.state === 'uncoordinated', {
          timeoutMs: 10_000,
        });
        expect(sample(await metrics(replicas[1]), 'sidecar_coordination_redis_up')).toBe(0);
      },
      60: async () => {
        await redis.start();
      },
    });
    await waitFor(
      'all replicas coordinating again',
      async () => {
        for (const r of replicas) if ((await status(r)).coordination.state !== 'coordinating') return false;
        return true;
      },
      { timeoutMs: 15_000 },
    );
    const seen = await allDelivered(events, replicas, 40_000);
    expect(seen.size).toBe(100);
    const again = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    expect(await increase(outcome('uncoordinated'))).toBeGreaterThan(0);
    expect(await increase('sidecar_coordination_outages_total')).toBe(3);
    expect(again).toBeLessThanOrEqual((await increase(duplicates('redis_unavailable'))) + (await increase(duplicates('lease_lapsed'))));
    // One warning per outage per replica, not one per event.
    for (const r of replicas) {
      expect(r.sidecar.lines.filter((l) => l.includes('Redis is unreachable')).length).toBe(1);
    }
  });

  it('a frozen redis-server (SIGSTOP) costs a request at most REDIS_TIMEOUT once, then none until it answers again', async () => {
    const channel = 'haRedisFrozen';
    await startReplicas(channel, '4s', '1s');
    const r = replicas[0];
    redis.signal('SIGSTOP');
    try {
      const timed = async (n: number) => {
        const e = webhook(n, 'frozen');
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${r.relayPort}/webhook`, { method: 'POST', headers: e.headers, body: e.body });
        expect([res.status, await res.text()]).toEqual([200, 'ok']);
        return performance.now() - t0;
      };
      // The first waits for its claim for REDIS_TIMEOUT (1 s), then is delivered all the same.
      expect(await timed(1)).toBeGreaterThanOrEqual(990);
      expect((await status(r)).coordination.state).toBe('uncoordinated');
      // Later ones do not ask Redis while it is out.
      const later = await Promise.all([2, 3, 4, 5, 6].map(timed));
      expect(Math.min(...later)).toBeLessThan(990);
      expect(await increase(outcome('uncoordinated'), [r])).toBe(6);
    } finally {
      redis.signal('SIGCONT');
    }
    await waitFor('coordination back once Redis answers', async () => (await status(r)).coordination.state === 'coordinating', {
      timeoutMs: 10_000,
    });
  });

  it('spool mode: each event stored by every replica, delivered once, in order, and a refused one dead-lettered once', async () => {
    const channel = 'haSpool';
    await startReplicas(channel, '4s', '1s', { RELAY_MODE: 'spool', SPOOL_RETRY_INITIAL: '100ms', SPOOL_RETRY_MAX: '200ms' });
    const events = Array.from({ length: 60 }, (_, n) => webhook(n, 'spool'));
    const refused = events[17].id;
    downstream.respond = (req, res) => {
      res.statusCode = req.headers['x-github-delivery'] === refused ? 400 : 200;
      res.end();
    };
    // One at a time, each stored by all three before the next is sent: replicas that receive
    // in one order (a smee client forwards events concurrently, so order is only defined so).
    const stored = 'sidecar_spool_receipts_total{result="stored"}';
    for (let k = 0; k < events.length; k++) {
      await send(channel, [events[k]], 1);
      await waitFor(`event ${k} stored by every replica`, async () => (await increase(stored)) === 3 * (k + 1), {
        timeoutMs: 10_000,
        everyMs: 5,
      });
    }
    const seen = await allDelivered(events, replicas, 40_000);
    await waitFor(
      'every spool empty',
      async () => {
        for (const r of replicas) if (sample(await metrics(r), 'sidecar_spool_events') !== 0) return false;
        return true;
      },
      { timeoutMs: 20_000 },
    );
    expect([...seen.values()].filter((n) => n !== 1)).toEqual([]);
    // One destination, one order: the order the replicas received them in.
    const order = downstream.requests.map((r) => JSON.parse(r.body.toString()).number as number);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(await increase('sidecar_spool_deliveries_total{result="delivered"}')).toBe(59);
    expect(await increase('sidecar_spool_deliveries_total{result="dead_lettered"}')).toBe(1);
    expect(await increase('sidecar_spool_dead_letters')).toBe(1);
    expect(await increase(outcome('uncoordinated'))).toBe(0);
  });
});

import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import Redis from 'ioredis';
import { InjectSettings } from '../../config/settings';
import type { RelayConfig } from '../../config/sidecar-config';
import type { CoordinationConfig } from '../../config/redis.schema';
import type { Route } from '../dispatch/dispatch-table';
import { endToEndHeaders } from '../forwarding';
import type { RelayCall } from '../relay-call';
import { DeliveryClient } from '../spool/delivery-client';
import type { EventMeta } from '../spool/spool-record';
import { CoordinationMetrics, DuplicateReason } from './coordination-metrics';
import { eventKey } from './event-key';

/**
 * Claim: takes the key when it is free (never set, lapsed, or released by a claimer that
 * could not deliver). Returns '' (it was free), 'released' (taken after a release), or
 * '!' + what holds it: 'done', 'dead', or 'o:<replica>'.
 */
const CLAIM = `local v = redis.call('GET', KEYS[1])
if v == false or v == 'released' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if v == false then return '' end
  return v
end
return '!' .. v`;
/** Renews a claim that is still this replica's. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
/** Gives a claim up, if still this replica's, so that a replica that holds the event delivers it. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], 'released', 'PX', ARGV[2]) return 1 end
return 0`;

interface Scripts {
  claim(key: string, owner: string, leaseMs: number): Promise<string>;
  renew(key: string, owner: string, leaseMs: number): Promise<number>;
  release(key: string, owner: string, ttlMs: number): Promise<number>;
}

/** An event another replica claimed, kept to deliver it should that one not confirm. */
interface Held {
  key: string;
  method: string;
  url: string;
  headers: string[];
  client: string | undefined;
  body: Buffer;
  route: Route;
  since: number;
}

/** What a spool attempt may do, per the claim. */
export type Gate = 'deliver' | 'wait' | 'finished';

const HELD_ANSWER = Buffer.from(
  '{"coordination":"held","message":"another replica is delivering this event; this one holds it until that delivery is confirmed"}',
);
const DONE_ANSWER = Buffer.from('{"coordination":"already_delivered","message":"this event was already delivered by another replica"}');
const MGET_CHUNK = 256;
/** While Redis is out, how often it is asked again. */
const PROBE_EVERY_MS = 1_000;
/** At start-up, how long the first connection is waited for before the relay opens uncoordinated. */
const FIRST_CONNECT_WAIT_MS = 3_000;

/**
 * Many replicas, one delivery. Each replica that receives an event claims it in Redis
 * (one script call, bounded by REDIS_TIMEOUT); the winner delivers it and renews its
 * claim while it does, then marks it done; the others answer their caller 202 and hold
 * the event until its delivery is confirmed, or take it over when the claim lapses or is
 * released. Without an answer from Redis in time, a replica delivers what it receives
 * (counted as possible duplicates) and asks again every second until Redis is back.
 * The design and its reasons: docs/adr/0003-redis-coordination.md.
 */
@Injectable()
export class Coordinator implements OnModuleInit {
  private readonly logger = new Logger('Coordination');
  private readonly owner: string;
  private readonly redis: Redis & Scripts;
  private up = false;
  private downSince: number = Date.now();
  private lastError: string | null = null;
  /** Why the connection last failed (refused, TLS, authentication), kept over the vaguer errors of commands sent meanwhile. */
  private connectionError: string | null = null;
  private uncoordinatedInOutage = 0;
  private closed = false;
  /** Keys this replica claimed and is delivering (proxy) or holds in its spool queue (spool): renewed until settled. */
  private readonly owned = new Set<string>();
  private readonly held = new Map<string, Held>();
  private heldBytes = 0;
  /** Spool events: their key, and whether they waited on another replica's claim. */
  private readonly spoolKeys = new Map<string, { key: string; waited: boolean }>();
  private readonly pollMs: number;
  private renewTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private takeovers: DeliveryClient | null = null;
  private readonly relayTimeoutMs: number;
  private readonly maxConnections: number;

  constructor(
    @InjectSettings('coordination') readonly config: CoordinationConfig,
    @InjectSettings('relay') relay: RelayConfig,
    private readonly metrics: CoordinationMetrics,
  ) {
    this.relayTimeoutMs = relay.timeoutMs;
    this.maxConnections = relay.maxConnections;
    this.owner = `o:${this.config.replica}`;
    this.pollMs = Math.min(1_000, Math.max(100, Math.floor(this.config.leaseMs / 5)));
    const c = this.config;
    this.redis = new Redis(c.url, {
      password: c.passwordFile === null ? undefined : readFileSync(c.passwordFile, 'utf8').trim(),
      lazyConnect: true,
      // A command waits for Redis no longer than this; none is queued while disconnected.
      commandTimeout: c.commandTimeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Commands of concurrent requests go out in one write (and one reply read) per turn of the event loop.
      enableAutoPipelining: true,
      connectTimeout: Math.max(1_000, c.commandTimeoutMs * 4),
      retryStrategy: (times) => Math.min(100 * times, 1_000),
      connectionName: c.replica,
    }) as Redis & Scripts;
    this.redis.defineCommand('claim', { numberOfKeys: 1, lua: CLAIM });
    this.redis.defineCommand('renew', { numberOfKeys: 1, lua: RENEW });
    this.redis.defineCommand('release', { numberOfKeys: 1, lua: RELEASE });
    // Connection errors are reported once per outage by markDown, not once per retry.
    this.redis.on('error', (e: Error) => (this.lastError = this.connectionError = e.message));
    this.redis.on('close', () => this.markDown(this.connectionError ?? 'the connection to Redis closed'));
    this.redis.on('ready', () => {
      this.connectionError = null;
      void this.probe();
    });
  }

  /** Waits a little for the first connection, so that a normal start coordinates from its first event. */
  async onModuleInit(): Promise<void> {
    const connected = this.redis.connect().then(
      () => this.probe(),
      (e: Error) => {
        this.lastError = e.message;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([connected, new Promise<void>((r) => (timer = setTimeout(r, FIRST_CONNECT_WAIT_MS)))]);
    clearTimeout(timer);
    if (!this.up) this.markDown(this.lastError ?? 'no connection to Redis yet', true);
    this.renewTimer = setInterval(() => this.renew(), Math.max(100, Math.floor(this.config.leaseMs / 3)));
    this.sweepTimer = setInterval(() => void this.sweep(), this.pollMs);
    this.renewTimer.unref();
    this.sweepTimer.unref();
  }

  /** After the relay has drained: claims still open are given up, held events are dropped (the replicas that hold them too deliver them). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of [this.renewTimer, this.sweepTimer, this.probeTimer]) if (t) clearInterval(t);
    if (this.held.size > 0)
      this.logger.warn({ msg: 'shutting down with events held for other replicas; they hold them too', held: this.held.size });
    if (this.up) await Promise.allSettled([...this.owned].map((k) => this.redis.release(k, this.owner, this.config.doneTtlMs)));
    this.owned.clear();
    this.held.clear();
    await this.takeovers?.close().catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  get coordinating(): boolean {
    return this.up;
  }

  /** For /status. */
  status() {
    return {
      state: this.up ? 'coordinating' : 'uncoordinated',
      replica: this.config.replica,
      since: new Date(this.up ? this.upSince : this.downSince).toISOString(),
      lastError: this.up ? null : this.lastError,
      delivering: this.owned.size,
      held: this.held.size,
      heldBytes: this.heldBytes,
      holdMaxBytes: this.config.holdMaxBytes,
    };
  }

  private upSince = 0;
  /** When Redis came back after an outage (0: none yet); it may have lost its keys, so fresh claims soon after are counted. */
  private recoveredAt = 0;
  private hadOutage = false;

  /** A claim won on a key that did not exist: a possible duplicate when Redis may have lost it in an outage just over. */
  private freshClaim(): void {
    if (this.recoveredAt !== 0 && Date.now() - this.recoveredAt < this.config.leaseMs) this.metrics.possibleDuplicate('redis_unavailable');
  }

  // ---- proxy mode ----

  /** A whole request for a destination (never a health-check event): claimed, then delivered, held or answered. */
  relay(call: RelayCall, route: Route, body: Buffer | null): void {
    const req = call.req;
    const key = this.config.keyPrefix + eventKey(req.method!, req.url!, req.rawHeaders, body, this.config.eventIdHeaders);
    if (!this.up) return this.uncoordinated(call, route, body, key);
    this.redis.claim(key, this.owner, this.config.leaseMs).then(
      (v) => this.claimed(call, route, body, key, v),
      (e: Error) => {
        this.markDown(e.message);
        this.uncoordinated(call, route, body, key);
      },
    );
  }

  private claimed(call: RelayCall, route: Route, body: Buffer | null, key: string, v: string): void {
    if (v === '' || v === 'released') {
      this.metrics.count('delivering');
      if (v === '') this.freshClaim();
      this.owned.add(key);
      call.onSettled = (delivered) => this.settle(key, delivered);
      return call.forward(route, body);
    }
    if (v === '!done' || v === '!dead' || v === `!${this.owner}`) {
      this.metrics.count('already_delivered');
      return call.send(202, DONE_ANSWER);
    }
    const bytes = body?.length ?? 0;
    if (this.held.has(key)) {
      // The same event twice at this replica: one copy held is enough.
    } else if (this.heldBytes + bytes > this.config.holdMaxBytes) {
      this.metrics.count('not_held');
    } else {
      const req = call.req;
      this.held.set(key, {
        key,
        method: req.method!,
        url: req.url!,
        headers: endToEndHeaders(req.rawHeaders),
        client: call.clientAddress,
        body: body ?? Buffer.alloc(0),
        route,
        since: Date.now(),
      });
      this.heldBytes += bytes;
      this.metrics.count('held');
      this.metrics.held(this.held.size, this.heldBytes);
    }
    call.send(202, HELD_ANSWER);
  }

  /** Redis cannot be asked: delivered here, and marked done afterwards if Redis answers by then. */
  private uncoordinated(call: RelayCall, route: Route, body: Buffer | null, key: string): void {
    this.metrics.count('uncoordinated');
    this.metrics.possibleDuplicate('redis_unavailable');
    this.uncoordinatedInOutage++;
    call.onSettled = (delivered) => {
      if (delivered && this.up) this.redis.set(key, 'done', 'PX', this.config.doneTtlMs).catch(() => undefined);
    };
    call.forward(route, body);
  }

  /** The claimer's delivery is over: the destination answered (done), or it did not (released for the replicas that hold it). */
  private settle(key: string, delivered: boolean): void {
    this.owned.delete(key);
    if (delivered) {
      this.redis.set(key, 'done', 'PX', this.config.doneTtlMs).catch((e: Error) => this.markDown(e.message));
      return;
    }
    this.metrics.count('released');
    this.redis.release(key, this.owner, this.config.doneTtlMs).catch((e: Error) => this.markDown(e.message));
  }

  private renew(): void {
    if (!this.up || this.owned.size === 0) return;
    for (const key of this.owned) {
      this.redis.renew(key, this.owner, this.config.leaseMs).catch((e: Error) => this.markDown(e.message));
    }
  }

  /** Held events: dropped once delivered elsewhere, taken over when their claim lapsed or was released. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.held.size === 0 || this.closed) return;
    this.sweeping = true;
    const tookOver = { lapsed: 0, released: 0 };
    try {
      if (!this.up) {
        // Nobody can confirm anything now: after a lease's time the holders deliver what they hold.
        if (Date.now() - this.downSince >= this.config.leaseMs) this.deliverAllHeld();
        return;
      }
      const keys = [...this.held.keys()];
      for (let i = 0; i < keys.length; i += MGET_CHUNK) {
        const chunk = keys.slice(i, i + MGET_CHUNK);
        let values: Array<string | null>;
        try {
          values = await this.redis.mget(chunk);
        } catch (e) {
          this.markDown((e as Error).message);
          return;
        }
        for (let j = 0; j < chunk.length; j++) {
          const h = this.held.get(chunk[j]);
          if (h === undefined) continue;
          const v = values[j];
          if (v === 'done' || v === 'dead') {
            this.drop(h);
            this.metrics.count('confirmed');
          } else if (v === null || v === 'released') {
            const taken = await this.takeOver(h);
            if (taken !== null) tookOver[taken]++;
          }
        }
      }
    } finally {
      // One line per sweep, however many events a dead replica left.
      if (tookOver.lapsed + tookOver.released > 0) {
        this.logger.warn({
          msg: 'delivering events held for other replicas: their claims lapsed (the claimer died or stalled) or were given up',
          lapsed: tookOver.lapsed,
          released: tookOver.released,
        });
      }
      this.sweeping = false;
    }
  }

  /** Claims a held event whose claim is gone; null: not taken here (Redis out, or another replica was quicker). */
  private async takeOver(h: Held): Promise<'lapsed' | 'released' | null> {
    let v: string;
    try {
      v = await this.redis.claim(h.key, this.owner, this.config.leaseMs);
    } catch (e) {
      this.markDown((e as Error).message);
      return null;
    }
    if (v.startsWith('!')) {
      if (v === '!done' || v === '!dead') {
        this.drop(h);
        this.metrics.count('confirmed');
      }
      return null; // another holder was quicker: it is theirs now
    }
    this.drop(h);
    this.metrics.count('taken_over');
    // Free, not released: its claimer stopped renewing, maybe after it delivered.
    if (v === '') this.metrics.possibleDuplicate('lease_lapsed');
    this.owned.add(h.key);
    void this.deliverHeld(h, 'lease_lapsed').then((delivered) => this.settle(h.key, delivered));
    return v === '' ? 'lapsed' : 'released';
  }

  private deliverAllHeld(): void {
    const all = [...this.held.values()];
    if (all.length === 0) return;
    this.logger.warn({
      msg: 'Redis has been out for a lease: this replica delivers the events it held (duplicates possible)',
      events: all.length,
    });
    for (const h of all) {
      this.drop(h);
      this.metrics.count('uncoordinated');
      this.metrics.possibleDuplicate('redis_unavailable');
      void this.deliverHeld(h, 'redis_unavailable').then((delivered) => {
        if (delivered && this.up) this.redis.set(h.key, 'done', 'PX', this.config.doneTtlMs).catch(() => undefined);
      });
    }
  }

  /** One attempt, as the relay would have made it when the event arrived. */
  private async deliverHeld(h: Held, why: DuplicateReason): Promise<boolean> {
    this.takeovers ??= new DeliveryClient(this.relayTimeoutMs, this.maxConnections);
    const meta = { method: h.method, url: h.url, headers: h.headers, client: h.client ?? null } as EventMeta;
    const r = await this.takeovers.send(h.route, meta, h.body, new AbortController().signal);
    if (!r.answered) this.logger.warn({ msg: 'delivering a held event failed', why, rule: h.route.name, reason: r.error });
    return r.answered;
  }

  private drop(h: Held): void {
    if (!this.held.delete(h.key)) return;
    this.heldBytes -= h.body.length;
    this.metrics.held(this.held.size, this.heldBytes);
  }

  // ---- spool mode ----

  /** Before a spool attempt: deliver (claimed here, or Redis out), wait (another replica has it), or finished (delivered elsewhere). */
  async gate(eventId: string, meta: Pick<EventMeta, 'method' | 'url' | 'headers'>, body: Buffer): Promise<Gate> {
    let entry = this.spoolKeys.get(eventId);
    if (entry === undefined) {
      entry = {
        key:
          this.config.keyPrefix +
          eventKey(meta.method, meta.url, meta.headers, body.length === 0 ? null : body, this.config.eventIdHeaders),
        waited: false,
      };
      this.spoolKeys.set(eventId, entry);
    }
    if (this.owned.has(entry.key)) return 'deliver'; // a retry of this replica's own claim
    if (!this.up) return this.spoolUncoordinated();
    let v: string;
    try {
      v = await this.redis.claim(entry.key, this.owner, this.config.leaseMs);
    } catch (e) {
      this.markDown((e as Error).message);
      return this.spoolUncoordinated();
    }
    if (v === '' || v === 'released') {
      this.owned.add(entry.key);
      if (entry.waited) {
        this.metrics.count('taken_over');
        if (v === '') this.metrics.possibleDuplicate('lease_lapsed');
      } else {
        this.metrics.count('delivering');
        if (v === '') this.freshClaim();
      }
      return 'deliver';
    }
    if (v === '!done' || v === '!dead' || v === `!${this.owner}`) {
      this.spoolKeys.delete(eventId);
      this.metrics.count(entry.waited ? 'confirmed' : 'already_delivered');
      return 'finished';
    }
    if (!entry.waited) this.metrics.count('held');
    entry.waited = true;
    return 'wait';
  }

  private spoolUncoordinated(): Gate {
    this.metrics.count('uncoordinated');
    this.metrics.possibleDuplicate('redis_unavailable');
    this.uncoordinatedInOutage++;
    return 'deliver';
  }

  /** How long a spool event that waits on another replica's claim waits before it is asked about again. */
  get waitMs(): number {
    return this.pollMs;
  }

  /** A spool attempt's outcome: delivered and dead-lettered events are marked for all; a retry keeps the claim. */
  spoolSettled(eventId: string, how: 'delivered' | 'dead' | 'retry' | 'stopped'): void {
    const entry = this.spoolKeys.get(eventId);
    if (entry === undefined || how === 'retry') return;
    this.spoolKeys.delete(eventId);
    const mine = this.owned.delete(entry.key);
    if (how === 'stopped') {
      if (mine && this.up) this.redis.release(entry.key, this.owner, this.config.doneTtlMs).catch(() => undefined);
      return;
    }
    this.redis
      .set(entry.key, how === 'delivered' ? 'done' : 'dead', 'PX', this.config.doneTtlMs)
      .catch((e: Error) => this.markDown(e.message));
  }

  // ---- Redis up and down ----

  private async probe(): Promise<void> {
    try {
      await this.redis.ping();
      this.markUp();
    } catch (e) {
      this.lastError = this.connectionError ?? (e as Error).message;
    }
  }

  private markUp(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    if (this.up || this.closed) return;
    this.up = true;
    this.upSince = Date.now();
    if (this.hadOutage) this.recoveredAt = this.upSince;
    this.metrics.redisUp(true);
    this.logger.log({
      msg: 'coordinating through Redis',
      replica: this.config.replica,
      outageMs: this.uncoordinatedInOutage > 0 ? Date.now() - this.downSince : undefined,
      deliveredUncoordinated: this.uncoordinatedInOutage,
    });
    this.uncoordinatedInOutage = 0;
  }

  /** Once per outage: logged, counted, and Redis asked again every second until it answers in time. */
  private markDown(reason: string, starting = false): void {
    this.lastError = this.connectionError ?? reason;
    if (this.closed) return;
    if (this.up || starting) {
      if (this.up) this.hadOutage = true;
      this.up = false;
      this.downSince = Date.now();
      this.metrics.redisUp(false);
      this.logger.warn({
        msg: 'Redis is unreachable or slower than REDIS_TIMEOUT: each replica delivers what it receives (duplicates possible) until it is back',
        reason: this.lastError,
        timeoutMs: this.config.commandTimeoutMs,
      });
    }
    if (this.probeTimer === null) {
      this.probeTimer = setInterval(() => void this.probe(), PROBE_EVERY_MS);
      this.probeTimer.unref();
    }
  }
}

import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { retryAfterMs } from '../../common/retry-policy';
import { writeFileAtomic } from '../../common/atomic-write';
import { InjectSettings } from '../../config/settings';
import type { RelayConfig, SpoolConfig } from '../../config/sidecar-config';
import { DispatchRouter } from '../dispatch/dispatch-router';
import { DispatchTable, Route, singleRoute } from '../dispatch/dispatch-table';
import { endToEndHeaders, headerNameIs } from '../forwarding';
import { Coordinator } from '../coordination/coordinator';
import { RelayMetrics } from '../relay-metrics';
import { DeadLetter, DeadLetterFolder } from './dead-letter-folder';
import { AttemptResult, DeliveryClient } from './delivery-client';
import { DeliveryIdIndex } from './delivery-id-index';
import { DestinationQueue, SpooledEvent } from './destination-queue';
import { reconcile } from './recovery';
import { nextAttemptAt, verdictFor } from './retry-policy';
import { COMPACT_NORMALLY, COMPACT_UNDER_PRESSURE, RecordLocation, Segment, SegmentLog } from './segment-log';
import { DecodedRecord, encodeRecord, EventMeta } from './spool-record';
import { SpoolLock } from './spool-lock';
import { SpoolMetrics } from './spool-metrics';

/** A request as the relay hands it over: already matched to its route, body complete. */
export interface IncomingEvent {
  method: string;
  url: string;
  rawHeaders: string[];
  client: string | undefined;
  body: Buffer | null;
  route: Route;
}

export type Receipt =
  | { kind: 'stored'; id: string }
  | { kind: 'duplicate'; id: string }
  | { kind: 'full'; bytes: number; limit: number }
  | { kind: 'unavailable'; reason: string };

/** What the queue keeps of an event's meta. */
interface QueuedMeta {
  id: string;
  seq: number;
  receivedAt: number;
  queuedAt: number;
  deliveryId: string | null;
  route: Route;
}

const EMPTY = Buffer.alloc(0);
const DELIVERY_IDS_FILE = 'delivery-ids.json';
const DELIVERY_IDS_SAVE_MS = 5_000;
/** How often the spool looks for a segment worth compacting (and at once when it is full). */
const COMPACT_EVERY_MS = 1_000;
/** Space is short past this share of SPOOL_MAX_BYTES: compaction takes fuller segments too. */
const PRESSURE_SHARE = 3 / 4;

/**
 * Store-and-forward for the relay (RELAY_MODE=spool): takes each event onto disk before
 * the caller gets its 202, then delivers it in the background, per destination in
 * arrival order, until the destination answers or the event becomes a dead letter.
 * Owns the segment log, the dead letters, the delivery-id index and the queues.
 */
@Injectable()
export class Spool implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('Spool');
  private readonly log: SegmentLog;
  private readonly letters: DeadLetterFolder;
  private readonly lock: SpoolLock;
  private readonly ids: DeliveryIdIndex | null;
  private readonly dedupHeader: string | null;
  /** Writes under way per delivery id, so that a duplicate arriving meanwhile waits for the first. */
  private readonly writingIds = new Map<string, Promise<Receipt>>();
  private readonly queues = new Map<string, DestinationQueue>();
  private readonly client: DeliveryClient;
  private readonly routes = new Map<string, Route>();
  private readonly table: DispatchTable | null;
  private readonly fallback: Route;
  private readonly attempts = new Set<AbortController>();
  private readonly moving = new Set<string>();
  private idleWaiters: Array<() => void> = [];
  private nextSeq = 1;
  private reserved = 0;
  private events = 0;
  private state: 'starting' | 'running' | 'stopping' | 'closed' = 'starting';
  /** Past SPOOL_MAX_BYTES at the last receipt: logged once when it starts and once when it ends. */
  private full = false;
  private idsDirty = false;
  private idsTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private compacting: Promise<void> | null = null;

  constructor(
    @InjectSettings('spool') private readonly config: SpoolConfig,
    @InjectSettings('relay') relay: RelayConfig,
    private readonly metrics: SpoolMetrics,
    private readonly relayMetrics: RelayMetrics,
    /** With dispatch rules: each event is delivered to its rule's destination. */
    @Inject(DispatchRouter) router: DispatchRouter | null,
    /** With REDIS_URL: replicas agree on who delivers each event. */
    @Inject(Coordinator) private readonly coordinator: Coordinator | null,
  ) {
    this.log = new SegmentLog(join(this.config.path, 'segments'), segmentRollBytes(this.config.maxBytes));
    this.letters = new DeadLetterFolder(join(this.config.path, 'dead-letters'));
    this.lock = new SpoolLock(join(this.config.path, 'lock'));
    this.ids = this.config.dedupHeader === null ? null : new DeliveryIdIndex(this.config.dedupWindowMs);
    this.dedupHeader = this.config.dedupHeader?.toLowerCase() ?? null;
    this.client = new DeliveryClient(this.config.deliveryTimeoutMs, this.config.concurrency);
    this.table = router?.table ?? null;
    this.fallback = this.table?.fallback ?? singleRoute(relay.downstreamUrl);
    for (const r of this.table?.routes ?? [this.fallback]) this.routes.set(r.name, r);
  }

  get depth(): number {
    return this.events;
  }

  /** What counts against SPOOL_MAX_BYTES: files on disk plus records being written. */
  get bytes(): number {
    return this.log.diskBytes + this.letters.diskBytes + this.reserved;
  }

  get maxBytes(): number {
    return this.config.maxBytes;
  }

  get deadLetterCount(): number {
    return this.letters.count;
  }

  /** Recovery: every intact event on disk is queued again before the relay port opens. */
  async onModuleInit(): Promise<void> {
    const started = performance.now();
    await mkdir(this.config.path, { recursive: true, mode: 0o700 });
    await this.lock.acquire();
    const { damaged } = await this.letters.open();
    const { records, report } = await this.log.recover((m): QueuedMeta => ({
      id: m.id,
      seq: m.seq,
      receivedAt: m.receivedAt,
      queuedAt: m.queuedAt,
      deliveryId: m.deliveryId,
      route: this.routeFor(m),
    }));
    const settled = reconcile(records, (id) => this.letters.get(id));
    for (const loc of settled.finish) this.log.finish(loc);
    for (const id of settled.requeued) await this.letters.remove(id);
    await this.loadDeliveryIds();
    for (const r of settled.live) {
      this.enqueue(r.meta, r.meta.route, r.location);
      this.nextSeq = Math.max(this.nextSeq, r.meta.seq + 1);
      if (this.ids && r.meta.deliveryId !== null) this.ids.remember(r.meta.deliveryId, r.meta.id, r.meta.receivedAt);
    }
    // Saved soon, so that these ids are still known after a restart once their events are delivered.
    if (this.ids !== null && this.ids.size > 0) this.deliveryIdsChanged();
    this.nextSeq = Math.max(this.nextSeq, report.maxSeq + 1);
    for (const letter of this.letters.list()) this.nextSeq = Math.max(this.nextSeq, letter.seq + 1);
    if (report.damagedBytes > 0 || damaged.length > 0) {
      this.logger.warn({
        msg: 'spool recovery dropped damaged data',
        damagedBytes: report.damagedBytes,
        segments: report.damagedSegments,
        deadLettersSetAside: damaged,
      });
    }
    this.logger.log({
      msg: 'spool recovered',
      path: this.config.path,
      events: this.events,
      deadLetters: this.letters.count,
      bytes: this.bytes,
      segmentsRead: report.segments,
      ms: Math.round(performance.now() - started),
    });
  }

  onApplicationBootstrap(): void {
    if (this.state !== 'starting') return;
    this.state = 'running';
    for (const q of this.queues.values()) this.pump(q);
    this.compactTimer = setInterval(() => void this.compactSegments(), COMPACT_EVERY_MS);
    this.compactTimer.unref();
  }

  /**
   * An event that keeps being retried holds its whole segment on disk, delivered
   * neighbours included. Segments that are mostly finished have their waiting events
   * moved to the end of the log (segment-log.ts), one segment after another while there
   * are such segments, so that a stuck destination holds about its own events' bytes.
   */
  private compactSegments(): Promise<void> {
    return (this.compacting ??= this.runCompaction().finally(() => (this.compacting = null)));
  }

  private async runCompaction(): Promise<void> {
    while (this.state === 'running') {
      const policy = this.bytes >= this.config.maxBytes * PRESSURE_SHARE ? COMPACT_UNDER_PRESSURE : COMPACT_NORMALLY;
      const segments = this.log.compactable(policy);
      if (segments.length === 0) return;
      // One walk over the queues per pass, however many segments it compacts.
      const waiting = new Map(segments.map((s): [Segment, SpooledEvent[]] => [s, []]));
      for (const q of this.queues.values()) for (const e of q.waiting()) waiting.get(e.segment)?.push(e);
      for (const segment of segments) {
        if (this.state !== 'running') return;
        try {
          const done = await this.log.compact(segment, waiting.get(segment)!, (r) => !(r as SpooledEvent).done);
          if (done.moved > 0) this.metrics.compacted(done.movedBytes);
          this.logger.debug({ msg: 'spool segment compacted', ...done, freedBytes: segment.deleted ? segment.size : 0, bytes: this.bytes });
          if (done.left > 0)
            this.logger.warn({
              msg: 'spool compaction left records in place (unreadable or not written); it tries that segment again later',
              segment: done.segment,
              left: done.left,
            });
        } catch (err) {
          this.logger.warn({ msg: 'spool compaction failed; it tries again later', reason: (err as Error).message });
          return;
        }
      }
    }
  }

  /** Takes an event onto disk; the answer to give comes back once it is there (or why not). */
  accept(e: IncomingEvent): Promise<Receipt> {
    if (this.closing !== null) return Promise.resolve(this.unavailable('the spool is closing'));
    const deliveryId = this.dedupHeader === null ? null : firstValue(e.rawHeaders, this.dedupHeader);
    if (deliveryId === null) return this.store(e, null);
    const first = this.ids!.lookup(deliveryId, Date.now());
    if (first !== null) {
      this.metrics.receipt('duplicate');
      return Promise.resolve({ kind: 'duplicate', id: first });
    }
    const writing = this.writingIds.get(deliveryId);
    if (writing !== undefined) {
      return writing.then((r) => {
        if (r.kind !== 'stored' && r.kind !== 'duplicate') return this.accept(e);
        this.metrics.receipt('duplicate');
        return { kind: 'duplicate', id: r.id };
      });
    }
    const stored = this.store(e, deliveryId);
    this.writingIds.set(deliveryId, stored);
    void stored.then(() => this.writingIds.delete(deliveryId));
    return stored;
  }

  private async store(e: IncomingEvent, deliveryId: string | null): Promise<Receipt> {
    const now = Date.now();
    const meta: EventMeta = {
      id: randomUUID(),
      seq: 0,
      method: e.method,
      url: e.url,
      headers: endToEndHeaders(e.rawHeaders),
      client: e.client ?? null,
      receivedAt: now,
      queuedAt: now,
      route: e.route.name,
      deliveryId,
    };
    const body = e.body ?? EMPTY;
    let appended = this.append(meta, body, true);
    if (appended === null) {
      await this.log.releaseIdle();
      appended = this.append(meta, body, true);
    }
    if (appended === null) {
      this.metrics.receipt('full');
      void this.compactSegments();
      if (!this.full) {
        this.full = true;
        this.logger.warn({
          msg: 'spool full: new events are answered 507',
          bytes: this.bytes,
          limit: this.config.maxBytes,
          events: this.events,
          deadLetters: this.letters.count,
        });
      }
      return { kind: 'full', bytes: this.bytes, limit: this.config.maxBytes };
    }
    let location: RecordLocation;
    try {
      location = await appended.written;
    } catch (err) {
      this.logger.error({ msg: 'spool write failed', reason: (err as Error).message });
      return this.unavailable(`the event could not be written: ${(err as Error).message}`);
    } finally {
      this.reserved -= appended.length;
    }
    this.enqueue(meta, e.route, location);
    if (deliveryId !== null) {
      this.ids!.remember(deliveryId, meta.id, now);
      this.deliveryIdsChanged();
    }
    this.metrics.receipt('stored');
    if (this.full) {
      this.full = false;
      this.logger.log({ msg: 'spool accepting events again', bytes: this.bytes, limit: this.config.maxBytes });
    }
    return { kind: 'stored', id: meta.id };
  }

  /**
   * Numbers the record and hands it to the log in one synchronous step, so that log
   * order, queue order and seq order are one and the same. Null when it would not fit.
   */
  private append(meta: EventMeta, body: Buffer, limited: boolean): { written: Promise<RecordLocation>; length: number } | null {
    meta.seq = this.nextSeq;
    const record = encodeRecord(meta, body);
    if (limited && this.bytes + record.length > this.config.maxBytes) return null;
    this.nextSeq++;
    this.reserved += record.length;
    return { written: this.log.append(record, meta.seq), length: record.length };
  }

  private unavailable(reason: string): Receipt {
    this.metrics.receipt('unavailable');
    return { kind: 'unavailable', reason };
  }

  private routeFor(meta: EventMeta): Route {
    // The rule is looked up by name, so that its current destination and patches apply.
    // A rule that is gone from the config: the request is matched again as it is now.
    return this.routes.get(meta.route) ?? this.table?.match(meta.headers) ?? this.fallback;
  }

  private enqueue(meta: Omit<QueuedMeta, 'route'>, route: Route, location: RecordLocation): void {
    const key = route.destination === null ? `nowhere:${route.name}` : route.destination.url.href;
    let q = this.queues.get(key);
    if (q === undefined) {
      q = new DestinationQueue(key, route.destination?.origin ?? null, this.config.concurrency);
      this.queues.set(key, q);
    }
    q.push({
      segment: location.segment,
      offset: location.offset,
      length: location.length,
      seq: location.seq,
      id: meta.id,
      route,
      deliveryId: meta.deliveryId,
      receivedAt: meta.receivedAt,
      queuedAt: meta.queuedAt,
      attempts: 0,
      lastStatus: null,
      lastError: null,
      nextAttemptAt: 0,
      inFlight: false,
      done: false,
    });
    this.events++;
    this.pump(q);
  }

  /** Starts whatever the queue's window allows now, and sets its timer for the next retry due. */
  private pump(q: DestinationQueue): void {
    if (this.state !== 'running') return;
    const now = Date.now();
    let soonest = Infinity;
    for (const e of q.eligible()) {
      if (e.inFlight) continue;
      if (e.nextAttemptAt <= now) void this.attempt(q, e);
      else soonest = Math.min(soonest, e.nextAttemptAt);
    }
    if (soonest === Infinity || soonest === q.timerAt) return;
    if (q.timer) clearTimeout(q.timer);
    q.timerAt = soonest;
    q.timer = setTimeout(() => {
      q.timer = null;
      q.timerAt = Infinity;
      this.pump(q);
    }, soonest - now);
  }

  private async attempt(q: DestinationQueue, e: SpooledEvent): Promise<void> {
    e.inFlight = true;
    q.inFlight++;
    const abort = new AbortController();
    this.attempts.add(abort);
    let record: DecodedRecord | null = null;
    let result: AttemptResult;
    try {
      record = await this.log.read(e);
      // With REDIS_URL: one replica delivers it; the others keep it queued until that one is done.
      const gate = this.coordinator === null ? 'deliver' : await this.coordinator.gate(e.id, record.meta, record.body);
      if (gate !== 'deliver') return this.gated(q, e, gate, abort);
      result = await this.client.send(e.route, record.meta, record.body, abort.signal);
    } catch (err) {
      result = { answered: false, error: (err as Error).message, timedOut: false, aborted: false };
    }
    try {
      if (record === null) {
        // Left unfinished on disk: a restart reads the segment again, and a record that
        // fails its checksum there is dropped for good.
        this.logger.error({
          msg: 'spooled event is unreadable: left on disk and out of the queue until a restart',
          id: e.id,
          rule: e.route.name,
          reason: result.answered ? '' : result.error,
        });
        this.metrics.delivery('unreadable');
        this.finish(q, e);
      } else if (!(!result.answered && result.aborted)) {
        await this.settle(q, e, record, result);
      } else this.coordinator?.spoolSettled(e.id, 'stopped');
    } finally {
      e.inFlight = false;
      q.inFlight--;
      this.attempts.delete(abort);
      if (this.attempts.size === 0) this.wakeIdleWaiters();
    }
    this.pump(q);
  }

  private async settle(q: DestinationQueue, e: SpooledEvent, record: DecodedRecord, result: AttemptResult): Promise<void> {
    e.attempts++;
    const now = Date.now();
    let retryAfter: number | null = null;
    if (result.answered) {
      this.relayMetrics.deliveryAnswered();
      e.lastStatus = result.status;
      e.lastError = null;
      retryAfter = retryAfterMs(result.retryAfter, now);
    } else {
      e.lastStatus = null;
      e.lastError = result.error;
    }
    const verdict = result.answered ? verdictFor(result.status) : 'retry';
    if (verdict === 'delivered') {
      this.coordinator?.spoolSettled(e.id, 'delivered');
      this.log.finish(e);
      this.finish(q, e);
      this.metrics.delivered((now - e.queuedAt) / 1000);
      if (q.failing) {
        q.failing = false;
        this.logger.log({ msg: 'delivery recovered', destination: q.origin, rule: e.route.name, waiting: q.length });
      }
      return;
    }
    if (verdict === 'retry') {
      const at = nextAttemptAt(e, retryAfter, now, {
        initialMs: this.config.retryInitialMs,
        maxMs: this.config.retryMaxMs,
        maxAgeMs: this.config.maxAgeMs,
      });
      if (at !== null) {
        e.nextAttemptAt = at;
        this.metrics.delivery('retried');
        if (!q.failing) {
          q.failing = true;
          this.logger.warn({
            msg: 'delivery failing, retrying',
            destination: q.origin,
            rule: e.route.name,
            status: e.lastStatus,
            error: e.lastError,
            retryInMs: at - now,
            waiting: q.length,
          });
        }
        return;
      }
    }
    await this.deadLetter(q, e, record, verdict === 'dead' ? 'refused' : 'expired');
  }

  private async deadLetter(q: DestinationQueue, e: SpooledEvent, record: DecodedRecord, why: 'refused' | 'expired'): Promise<void> {
    const dead = { at: Math.max(Date.now(), e.queuedAt), attempts: e.attempts, lastStatus: e.lastStatus, lastError: e.lastError };
    try {
      await this.letters.put({ ...record.meta, dead }, record.body);
    } catch (err) {
      // It stays in the queue, and the move is tried again after the longest backoff.
      e.nextAttemptAt = Date.now() + this.config.retryMaxMs;
      this.logger.error({ msg: 'moving an event to the dead letters failed', id: e.id, reason: (err as Error).message });
      return;
    }
    this.coordinator?.spoolSettled(e.id, 'dead');
    this.log.finish(e);
    this.finish(q, e);
    this.metrics.delivery('dead_lettered');
    this.logger.warn({
      msg:
        why === 'refused'
          ? 'destination refused an event: moved to the dead letters'
          : 'event not delivered within SPOOL_MAX_AGE: moved to the dead letters',
      id: e.id,
      rule: e.route.name,
      destination: q.origin,
      attempts: e.attempts,
      status: e.lastStatus,
      error: e.lastError,
    });
  }

  /** Another replica holds the claim (asked again shortly, nothing counted as an attempt), or delivered it already. */
  private gated(q: DestinationQueue, e: SpooledEvent, gate: 'wait' | 'finished', abort: AbortController): void {
    if (gate === 'finished') {
      this.log.finish(e);
      this.finish(q, e);
    } else e.nextAttemptAt = Date.now() + this.coordinator!.waitMs;
    e.inFlight = false;
    q.inFlight--;
    this.attempts.delete(abort);
    if (this.attempts.size === 0) this.wakeIdleWaiters();
    this.pump(q);
  }

  private finish(q: DestinationQueue, e: SpooledEvent): void {
    q.finished(e);
    this.events--;
  }

  oldestAgeSeconds(now = Date.now()): number | null {
    let oldest = Infinity;
    for (const q of this.queues.values()) {
      const head = q.first();
      if (head !== null) oldest = Math.min(oldest, head.queuedAt);
    }
    return oldest === Infinity ? null : Math.max(0, (now - oldest) / 1000);
  }

  /** The headline figures, cheap whatever the depth. */
  figures() {
    const oldest = this.oldestAgeSeconds();
    return {
      events: this.events,
      bytes: this.bytes,
      maxBytes: this.config.maxBytes,
      oldestEventAgeSeconds: oldest === null ? null : Math.round(oldest * 1000) / 1000,
      deadLetters: this.letters.count,
    };
  }

  summary() {
    return {
      path: this.config.path,
      ...this.figures(),
      deliveryIdsRemembered: this.ids?.size ?? null,
      destinations: [...this.queues.values()]
        .filter((q) => q.length > 0)
        .map((q) => {
          const head = q.first()!;
          return {
            destination: q.origin,
            rules: q.rules,
            events: q.length,
            inFlight: q.inFlight,
            failing: q.failing,
            head: {
              id: head.id,
              receivedAt: new Date(head.receivedAt).toISOString(),
              attempts: head.attempts,
              lastStatus: head.lastStatus,
              lastError: head.lastError,
              nextAttemptAt: head.attempts > 0 ? new Date(head.nextAttemptAt).toISOString() : null,
            },
          };
        }),
    };
  }

  deadLetters() {
    return this.letters.list().map((l) => this.describe(l));
  }

  private describe(l: DeadLetter) {
    const route = this.routes.get(l.route);
    return {
      id: l.id,
      receivedAt: new Date(l.receivedAt).toISOString(),
      deadAt: new Date(l.dead.at).toISOString(),
      rule: l.route,
      destination: route?.destination?.origin ?? null,
      deliveryId: l.deliveryId,
      attempts: l.dead.attempts,
      lastStatus: l.dead.lastStatus,
      lastError: l.dead.lastError,
      bytes: l.bytes,
    };
  }

  /**
   * Puts a dead letter back at the end of its destination's queue, attempts counted
   * afresh and SPOOL_MAX_AGE from now. The record is appended (and synced) before the
   * letter is removed; a crash between the two is settled at recovery. Not limited by
   * SPOOL_MAX_BYTES: it moves bytes that are already counted. null: no such letter.
   */
  async requeue(id: string): Promise<{ id: string } | null> {
    if (this.letters.get(id) === undefined || this.moving.has(id)) return null;
    const { requeued, errors } = await this.requeueInOrder([id]);
    if (errors.length > 0) throw errors[0];
    return requeued === 1 ? { id } : null;
  }

  async requeueAll(): Promise<{ requeued: number; failed: number }> {
    const ids = this.letters
      .list()
      .map((l) => l.id)
      .filter((id) => !this.moving.has(id));
    let requeued = 0;
    let failed = 0;
    // Some at a time: their appends share syncs, and memory holds only a few bodies.
    for (let i = 0; i < ids.length; i += 16) {
      const r = await this.requeueInOrder(ids.slice(i, i + 16));
      requeued += r.requeued;
      failed += r.errors.length;
    }
    return { requeued, failed };
  }

  /** Reads the letters together, then appends them in the order given, so that they keep their order in the queue. */
  private async requeueInOrder(ids: string[]): Promise<{ requeued: number; errors: Error[] }> {
    if (this.closing !== null) return { requeued: 0, errors: [new Error('the spool is closing')] };
    for (const id of ids) this.moving.add(id);
    const errors: Error[] = [];
    let requeued = 0;
    try {
      const read = await Promise.allSettled(ids.map((id) => this.letters.read(id)));
      const appends = read.map((r) => {
        if (r.status === 'rejected') {
          errors.push(r.reason as Error);
          return null;
        }
        const { dead, ...meta } = r.value.meta;
        meta.queuedAt = Math.max(Date.now(), dead!.at + 1);
        const appended = this.append(meta, r.value.body, false)!;
        const written = appended.written.finally(() => (this.reserved -= appended.length));
        return { meta, written };
      });
      for (const a of appends) {
        if (a === null) continue;
        let location: RecordLocation;
        try {
          location = await a.written;
        } catch (err) {
          errors.push(err as Error);
          continue;
        }
        this.enqueue(a.meta, this.routeFor(a.meta), location);
        requeued++;
        await this.letters.remove(a.meta.id).catch((err: Error) => {
          this.logger.error({
            msg: 'removing a requeued dead letter failed; it goes at the next start',
            id: a.meta.id,
            reason: err.message,
          });
        });
        this.logger.log({ msg: 'dead letter requeued', id: a.meta.id, rule: a.meta.route });
      }
    } finally {
      for (const id of ids) this.moving.delete(id);
    }
    return { requeued, errors };
  }

  /** Deletes a dead letter for good. false: no such letter. */
  async discard(id: string): Promise<boolean> {
    if (this.letters.get(id) === undefined || this.moving.has(id)) return false;
    await this.letters.remove(id);
    this.logger.log({ msg: 'dead letter deleted', id });
    return true;
  }

  /**
   * Stops the worker between events: no new attempt starts, attempts under way get up to
   * `timeoutMs` to be answered, and any still open then are cut (their events stay in the
   * spool and go out again after the restart).
   */
  async stopDelivery(timeoutMs: number): Promise<{ cut: number }> {
    if (this.state === 'running' || this.state === 'starting') this.state = 'stopping';
    if (this.compactTimer) clearInterval(this.compactTimer);
    this.compactTimer = null;
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = null;
      q.timerAt = Infinity;
    }
    let cut = 0;
    if (this.attempts.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      cut = this.attempts.size;
      for (const a of this.attempts) a.abort(new Error('shutting down'));
      await this.idle();
    }
    await this.client.close().catch(() => undefined);
    return { cut };
  }

  /** After the relay has drained: every accepted event is on disk; files are synced and closed. */
  close(): Promise<void> {
    return (this.closing ??= this.closeFiles());
  }

  private async closeFiles(): Promise<void> {
    await this.stopDelivery(0);
    if (this.idsTimer) clearTimeout(this.idsTimer);
    await this.saveDeliveryIds();
    await this.log.close();
    await this.letters.close();
    await this.lock.release();
    this.state = 'closed';
  }

  private idle(): Promise<void> {
    if (this.attempts.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private wakeIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Delivery ids of events already delivered are kept in a small file, saved every few
   * seconds when changed and at shutdown, so that a duplicate is still known after a
   * restart; ids of events still spooled or dead-lettered are rebuilt from the spool.
   */
  private deliveryIdsChanged(): void {
    this.idsDirty = true;
    if (this.idsTimer !== null || this.state === 'closed') return;
    this.idsTimer = setTimeout(() => {
      this.idsTimer = null;
      void this.saveDeliveryIds();
    }, DELIVERY_IDS_SAVE_MS);
    this.idsTimer.unref();
  }

  private async saveDeliveryIds(): Promise<void> {
    if (this.ids === null || !this.idsDirty) return;
    this.idsDirty = false;
    const now = Date.now();
    this.ids.prune(now);
    const rows = [...this.ids.remembered(now)].map((r) => [r.deliveryId, r.eventId, r.acceptedAt]);
    try {
      await writeFileAtomic(join(this.config.path, DELIVERY_IDS_FILE), JSON.stringify(rows), 0o600);
    } catch (err) {
      this.logger.warn({ msg: 'saving the delivery ids failed', reason: (err as Error).message });
    }
  }

  private async loadDeliveryIds(): Promise<void> {
    if (this.ids === null) return;
    let rows: unknown;
    try {
      rows = JSON.parse(await readFile(join(this.config.path, DELIVERY_IDS_FILE), 'utf8'));
    } catch {
      return; // none yet, or unreadable: the spool's own events still rebuild most of it
    }
    if (!Array.isArray(rows)) return;
    const now = Date.now();
    for (const row of rows) {
      if (
        Array.isArray(row) &&
        typeof row[0] === 'string' &&
        typeof row[1] === 'string' &&
        typeof row[2] === 'number' &&
        now - row[2] < this.config.dedupWindowMs
      ) {
        this.ids.remember(row[0], row[1], row[2]);
      }
    }
    for (const l of this.letters.list()) if (l.deliveryId !== null) this.ids.remember(l.deliveryId, l.id, l.receivedAt);
  }
}

/**
 * Segments small against the limit, so that space held by delivered events in a segment
 * that still has live ones stays a small part of it; large enough that files are few.
 */
export function segmentRollBytes(maxBytes: number): number {
  return Math.min(16 * 1024 * 1024, Math.max(4096, Math.floor(maxBytes / 16)));
}

function firstValue(rawHeaders: readonly string[], lowerName: string): string | null {
  for (let i = 0; i < rawHeaders.length; i += 2) if (headerNameIs(rawHeaders[i], lowerName)) return rawHeaders[i + 1];
  return null;
}

import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Registry } from 'prom-client';
import { compress } from 'snappyjs';
import { backoffMs } from '../../common/retry-policy';
import { InjectSettings } from '../../config/settings';
import type { RemoteWriteConfig, ScrapeTarget } from '../../config/sidecar-config';
import { isRetried } from './delivery-policy';
import { PushQueue } from './push-queue';
import { RemoteWriteClient } from './remote-write-client';
import { DropReason, RemoteWriteMetrics } from './remote-write-metrics';
import { TargetScraper } from './target-scraper';
import { encodeWriteRequest, Label } from './write-request';
import { TargetLabels, WriteRequestBuilder } from './write-request-builder';

/** The `job` label of the sidecar's own series and of its scraped targets' (REMOTE_WRITE_LABELS may set another). */
export const OWN_JOB = 'pod-sidecar';
export const SCRAPE_JOB = 'scrape';
const NO_SERIES: ReadonlyMap<string, Label[]> = new Map();

/** One request of a push: the samples of one source (the sidecar, or one scrape target's instance). */
interface Push {
  source: string;
  /** Snappy-compressed WriteRequest. */
  body: Buffer;
  samples: number;
  takenAt: Date;
  /** Aborts the request in flight for this push. */
  cancel: AbortController;
}

interface TargetState {
  up: boolean | null;
  reason: string | null;
}

export interface RemoteWriteState {
  queueLength: number;
  lastSuccessAt: string | null;
  consecutiveFailures: number;
  lastError: string | null;
  targets: Array<{ instance: string; up: boolean | null; reason: string | null }>;
}

/**
 * Pushes the registry's samples (and the scrape targets') to the remote-write receiver:
 * a snapshot every PUSH_INTERVAL into a bounded queue, delivered oldest first, one request
 * at a time, retried with backoff while the receiver is away or busy, and a last snapshot
 * flushed at shutdown within REMOTE_WRITE_TIMEOUT.
 */
@Injectable()
export class RemoteWriteService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('RemoteWrite');
  private readonly queue: PushQueue<Push>;
  private readonly ownLabels: TargetLabels;
  private readonly targetLabels: Map<ScrapeTarget, TargetLabels>;
  private readonly targetStates: Map<string, TargetState>;
  private readonly lastStamp = new Map<string, number>();
  /** Per source ('' for the sidecar, else the target's instance): the series of its last push, for staleness markers. */
  private readonly pushedSeries = new Map<string, ReadonlyMap<string, Label[]>>();
  private snapshotting: Promise<void> | null = null;
  private delivering: Promise<void> | null = null;
  /** The request in flight and the counting of its answer. */
  private attempting: Promise<void> | null = null;
  private failures = 0;
  private notBefore = 0;
  private lastError: string | null = null;
  private lastSuccessAt: Date | null = null;
  private wake: () => void = () => undefined;
  private stopping = false;
  private deadline = Infinity;

  constructor(
    @InjectSettings('remoteWrite') private readonly config: RemoteWriteConfig,
    private readonly registry: Registry,
    private readonly client: RemoteWriteClient,
    private readonly scraper: TargetScraper,
    private readonly metrics: RemoteWriteMetrics,
    private readonly scheduler: SchedulerRegistry,
  ) {
    // REMOTE_WRITE_QUEUE_SIZE counts pushes; a push is one request per source.
    this.queue = new PushQueue(this.config.queueSize * (1 + this.config.scrape.targets.length));
    // Defaults first: the configured extra labels win over them.
    const labelsOf = (defaults: Array<[string, string]>): TargetLabels => [...new Map([...defaults, ...this.config.labels])];
    this.ownLabels = labelsOf([
      ['job', OWN_JOB],
      ['instance', this.config.instance],
    ]);
    this.targetLabels = new Map(
      this.config.scrape.targets.map((t) => [
        t,
        labelsOf([
          ['job', SCRAPE_JOB],
          ['instance', t.instance],
        ]),
      ]),
    );
    this.targetStates = new Map(this.config.scrape.targets.map((t) => [t.instance, { up: null, reason: null }]));
    this.metrics.targets(this.config.scrape.targets.map((t) => t.instance));
  }

  onApplicationBootstrap(): void {
    void this.pushNow();
    this.scheduler.addInterval(
      'remote-write',
      setInterval(() => void this.pushNow(), this.config.intervalMs),
    );
  }

  /** Takes a snapshot into the queue and starts its delivery; joins a snapshot still being taken. */
  pushNow(): Promise<void> {
    this.snapshotting ??= this.takeSnapshot()
      // A snapshot that fails (a collect callback that throws) costs this round only.
      .catch((e: Error) => this.logger.error({ msg: 'remote write: snapshot failed', reason: e.message }))
      .finally(() => (this.snapshotting = null));
    return this.snapshotting;
  }

  status(): RemoteWriteState {
    return {
      queueLength: this.queue.length,
      lastSuccessAt: this.lastSuccessAt?.toISOString() ?? null,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      targets: [...this.targetStates].map(([instance, s]) => ({ instance, ...s })),
    };
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'remote-write')) this.scheduler.deleteInterval('remote-write');
    this.stopping = true;
    const started = Date.now();
    this.deadline = started + this.config.timeoutMs;
    // The request in flight may have been started with the whole timeout: cut it at the deadline.
    const cutOff = setTimeout(() => this.queue.head?.cancel.abort(), this.config.timeoutMs);
    try {
      await this.snapshotting;
      // The last push carries the final values: those of a push answered meanwhile included.
      await this.attempting;
      await this.takeSnapshot();
      this.wake();
      await this.deliver();
    } catch (e) {
      this.logger.error({ msg: 'final push failed', reason: (e as Error).message });
    } finally {
      clearTimeout(cutOff);
    }
    const left = this.queue.clear();
    this.metrics.queued(0);
    const samples = left.reduce((n, p) => n + p.samples, 0);
    if (left.length > 0) {
      this.metrics.dropped('shutdown', samples);
      this.logger.warn({
        msg: 'remote write: pushes left undelivered at shutdown',
        pushes: left.length,
        samples,
        lastError: this.lastError,
      });
    } else {
      this.logger.log({ msg: 'remote write: final push delivered', ms: Date.now() - started });
    }
  }

  /**
   * One request per source: the sidecar's own registry (with an `up` series per target)
   * and each target (its samples, or staleness markers when it stopped answering). A receiver refuses a whole request for one sample it
   * cannot take (too old, out of order: a target's own timestamps can be either), so a
   * sloppy target costs only its own samples.
   */
  private async takeSnapshot(): Promise<void> {
    // Read once: a snapshot under way when shutdown starts is not the last one.
    const last = this.stopping;
    const own = new WriteRequestBuilder();
    const fromTargets: Array<[string, WriteRequestBuilder]> = [];
    const remaining = this.stopping ? Math.max(1, this.deadline - Date.now()) : Infinity;
    const scrapes = await Promise.all(
      this.config.scrape.targets.map(async (target) => {
        const outcome = await this.scraper.scrape(target, Math.min(this.config.scrape.timeoutMs, remaining));
        return { target, outcome, at: this.stamp(target.instance, outcome.ok ? outcome.scrapedAtMs : Date.now()) };
      }),
    );
    for (const { target, outcome, at } of scrapes) {
      const labels = this.targetLabels.get(target)!;
      this.recordScrape(target.instance, outcome.ok ? null : outcome.reason);
      const builder = new WriteRequestBuilder();
      if (outcome.ok) builder.addExposition(outcome.exposition, labels, at);
      // As a Prometheus scrape does: a series the target no longer exposes, or all of them
      // when it does not answer, is marked stale once.
      this.endSeries(target.instance, builder, at, last);
      fromTargets.push([target.instance, builder]);
      // As a Prometheus scrape does: `up` says whether the target answered.
      own.add('up', [], labels, outcome.ok ? 1 : 0, at);
    }
    const ownAt = this.stamp('', Date.now());
    own.addRegistry(await this.registry.getMetricsAsJSON(), this.ownLabels, ownAt);
    this.endSeries('', own, ownAt, last);
    const takenAt = new Date();
    for (const [source, builder] of [['sidecar', own] as const, ...fromTargets]) {
      if (builder.sampleCount === 0) continue;
      if (builder.duplicates > 0) this.logger.debug({ msg: 'remote write: duplicate series left out', source, count: builder.duplicates });
      this.enqueue({
        source,
        body: compress(encodeWriteRequest(builder.build())),
        samples: builder.sampleCount,
        takenAt,
        cancel: new AbortController(),
      });
    }
  }

  /**
   * Staleness markers for the series of `source` that ended since its last push; the last
   * push before shutdown ends all of them, one millisecond after their final sample, as
   * Prometheus does for a target that goes away.
   */
  private endSeries(source: string, builder: WriteRequestBuilder, at: number, last: boolean): void {
    builder.markEnded(this.pushedSeries.get(source) ?? NO_SERIES, at);
    this.pushedSeries.set(source, builder.tracked);
    if (last) builder.markAllEnded(this.stamp(source, at + 1));
  }

  /** Timestamps of one source only ever increase: two samples of a series at one instant would get the push refused. */
  private stamp(source: string, ms: number): number {
    const at = Math.max(ms, (this.lastStamp.get(source) ?? 0) + 1);
    this.lastStamp.set(source, at);
    return at;
  }

  private recordScrape(instance: string, failure: string | null): void {
    const state = this.targetStates.get(instance)!;
    const up = failure === null;
    this.metrics.scraped(instance, up);
    if (state.up !== up) {
      if (up) this.logger.log({ msg: 'scrape target up', instance });
      else this.logger.warn({ msg: 'scrape target down; its series are marked stale', instance, reason: failure });
    }
    state.up = up;
    state.reason = failure;
  }

  private enqueue(push: Push): void {
    for (const dropped of this.queue.add(push)) {
      dropped.cancel.abort();
      this.drop('queue_full', dropped);
    }
    this.metrics.queued(this.queue.length);
    // A dropped head that was waiting out a backoff: let the next one have its turn.
    this.wake();
    void this.deliver();
  }

  private drop(reason: DropReason, push: Push): void {
    this.metrics.dropped(reason, push.samples);
    this.logger.warn({
      msg: 'remote write: push dropped',
      reason,
      source: push.source,
      samples: push.samples,
      takenAt: push.takenAt.toISOString(),
      lastError: this.lastError,
    });
  }

  /** Runs the delivery loop, or joins the one running. */
  private deliver(): Promise<void> {
    this.delivering ??= this.deliverQueued()
      .catch((e: Error) => this.logger.error({ msg: 'remote write: delivery failed; the next push starts it again', reason: e.message }))
      .finally(() => (this.delivering = null));
    return this.delivering;
  }

  private async deliverQueued(): Promise<void> {
    for (;;) {
      const push = this.queue.head;
      if (push === undefined) return;
      const now = Date.now();
      if (this.stopping && now >= this.deadline) return;
      if (this.notBefore > now) {
        // At shutdown a wait that ends past the deadline is not worth starting.
        if (this.stopping && this.notBefore >= this.deadline) return;
        await this.sleep(this.notBefore - now);
        continue;
      }
      const timeoutMs = this.stopping ? Math.min(this.config.timeoutMs, this.deadline - now) : this.config.timeoutMs;
      this.attempting = this.attempt(push, timeoutMs).finally(() => (this.attempting = null));
      await this.attempting;
    }
  }

  /** Sends the head push and counts its answer. */
  private async attempt(push: Push, timeoutMs: number): Promise<void> {
    const outcome = await this.client.send(push.body, push.cancel.signal, timeoutMs);
    // Dropped while in flight, or cut off at shutdown: nothing to count, the queue has moved on.
    if (outcome === null || this.queue.head !== push) return;
    const at = Date.now();
    this.metrics.pushed(outcome.result, push.samples, at);
    if (outcome.result === 'success') {
      this.queue.settle(push);
      if (this.failures > 0) this.logger.log({ msg: 'remote write recovered', failedAttempts: this.failures });
      this.failures = 0;
      this.notBefore = 0;
      this.lastError = null;
      this.lastSuccessAt = new Date(at);
    } else if (isRetried(outcome.result)) {
      this.failures++;
      this.lastError = outcome.reason;
      const wait =
        outcome.retryAfterMs ?? backoffMs(this.failures, { initialMs: this.config.minBackoffMs, maxMs: this.config.maxBackoffMs });
      this.notBefore = at + wait;
      const fields = {
        msg: 'remote write failed; will retry',
        result: outcome.result,
        reason: outcome.reason,
        retryInMs: wait,
        attempt: this.failures,
      };
      // One warning per outage; the retries after it are detail.
      if (this.failures === 1) this.logger.warn(fields);
      else this.logger.debug(fields);
    } else {
      this.queue.settle(push);
      this.failures = 0;
      this.lastError = outcome.reason;
      this.drop('rejected', push);
    }
    this.metrics.queued(this.queue.length);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

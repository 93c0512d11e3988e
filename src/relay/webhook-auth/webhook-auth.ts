import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Counter } from 'prom-client';
import { InjectSettings } from '../../config/settings';
import type { DispatchConfig } from '../../config/sidecar-config';
import type { SecretSourceConfig, WebhookAuthConfig } from '../../config/webhook-auth.schema';
import type { Route } from '../dispatch/dispatch-table';
import { SecretSource } from './secret-set';
import { REJECT_REASONS, Rejected, SENDERS, verifyWebhook } from './verify-webhook';

/** A refused event: the verdict and the dispatch rule (or `health-check`) it was checked for. */
export type Refusal = Rejected & { rule: string };

export const WEBHOOK_AUTH_METRICS = [
  makeCounterProvider({
    name: 'sidecar_webhook_rejected_total',
    help: 'Events refused on the relay port (401) for want of a proof of origin, by reason (missing_signature, malformed_signature, unsupported_scheme, bad_signature, stale_timestamp) and sender (github, bitbucket, gitea, forgejo, gitlab, standard, unknown).',
    labelNames: ['reason', 'sender'],
  }),
  makeCounterProvider({
    name: 'sidecar_webhook_verified_total',
    help: 'Events whose proof of origin verified, by sender; health-check events of the sidecars on the channel count as github (they are signed as GitHub signs).',
    labelNames: ['sender'],
  }),
];

/** The header the sidecar signs its own health-check events with, as GitHub signs its webhooks. */
export const HEALTH_SIGNATURE_HEADER = 'X-Hub-Signature-256';

/**
 * Webhook authenticity on the relay port: which secrets each route's events are verified
 * with (a dispatch rule's own, else WEBHOOK_SECRET(_FILE)), the verdict, and its metrics
 * and log line. Present only when a secret is configured somewhere.
 */
@Injectable()
export class WebhookAuth implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('WebhookAuth');
  /** WEBHOOK_SECRET(_FILE); null when only rules carry secrets. */
  readonly global: SecretSource | null;
  /** By Route.index: the default route first, then the dispatch rules in file order. null: not verified. */
  private readonly byRoute: Array<SecretSource | null>;
  private readonly sources: SecretSource[] = [];
  private readonly verifiedBySender = new Map<string, Counter.Internal>();

  constructor(
    @InjectSettings('webhookAuth') private readonly config: WebhookAuthConfig,
    /** The dispatch rules, some with secrets of their own; null without dispatch rules. */
    @InjectSettings('dispatch') dispatch: DispatchConfig | null,
    @InjectMetric('sidecar_webhook_rejected_total') private readonly rejectedTotal: Counter<'reason' | 'sender'>,
    @InjectMetric('sidecar_webhook_verified_total') private readonly verifiedTotal: Counter<'sender'>,
  ) {
    this.global =
      this.config.secret &&
      this.source(this.config.secret, this.config.secret && 'file' in this.config.secret ? 'WEBHOOK_SECRET_FILE' : 'WEBHOOK_SECRET');
    const rules = dispatch?.rules ?? [];
    this.byRoute = [
      this.global,
      ...rules.map((r) => (r.secret ? this.source(r.secret, `the secret of dispatch rule ${r.name}`) : this.global)),
    ];
    // Every series exists from start-up at 0 (the label values are bounded: 5 reasons, 7 senders).
    for (const sender of SENDERS) {
      this.verifiedBySender.set(sender, verifiedTotal.labels(sender));
      verifiedTotal.labels(sender).inc(0);
      for (const reason of REJECT_REASONS) rejectedTotal.labels(reason, sender).inc(0);
    }
  }

  private source(config: SecretSourceConfig, what: string): SecretSource {
    const initial = 'file' in config ? readFileSync(config.file, 'utf8') : config.value;
    const where = 'file' in config ? `${what} (${config.file})` : what;
    const s = new SecretSource(
      config,
      initial,
      (reason) => this.logger.warn({ msg: 'webhook secrets file unusable: the last good secrets stay in force', source: where, reason }),
      () => this.logger.log({ msg: 'webhook secrets file changed: read again', source: where }),
    );
    this.sources.push(s);
    return s;
  }

  onModuleInit(): void {
    for (const s of this.sources) s.watch();
  }

  onApplicationShutdown(): void {
    for (const s of this.sources) s.stop();
  }

  /**
   * The verdict on a whole event about to be relayed or spooled on `route`: null when it
   * may go on, else the refusal (counted and logged here; the caller answers it).
   */
  check(route: Route, rawHeaders: readonly string[], body: Buffer | null): Refusal | null {
    const source = this.byRoute[route.index] ?? null;
    if (source === null) return null;
    return this.verdict(source, rawHeaders, body, route.name);
  }

  /**
   * A health-check event (answered by the relay, never relayed) is verified with the
   * global secrets, which the sidecar signs its own with; without them it is not verified.
   */
  checkHealthEvent(rawHeaders: readonly string[], body: Buffer | null): Refusal | null {
    return this.global === null ? null : this.verdict(this.global, rawHeaders, body, 'health-check');
  }

  /** The header value that signs a health-check event's body, or null when there are no global secrets. */
  signHealthEvent(body: Buffer): string | null {
    if (this.global === null) return null;
    return `sha256=${createHmac('sha256', this.global.current.signingKey).update(body).digest('hex')}`;
  }

  private verdict(source: SecretSource, rawHeaders: readonly string[], body: Buffer | null, rule: string): Refusal | null {
    const v = verifyWebhook(rawHeaders, body, source.current, Date.now(), this.config.toleranceMs);
    if (v.ok) {
      this.verifiedBySender.get(v.sender)!.inc();
      return null;
    }
    this.rejectedTotal.labels(v.reason, v.sender).inc();
    return { ...v, rule };
  }
}

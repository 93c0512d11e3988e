import { Injectable } from '@nestjs/common';
import { InjectSettings } from '../../config/settings';
import type { DispatchConfig } from '../../config/sidecar-config';
import type { WebhookAuthConfig } from '../../config/webhook-auth.schema';
import type { FeaturePart } from '../../management/feature-part';

/** Webhook authenticity's part of /status: where the secrets come from, never what they are. */
@Injectable()
export class WebhookAuthStatus implements FeaturePart {
  readonly key = 'webhookAuth';
  readonly feature = true;

  constructor(
    @InjectSettings('webhookAuth') private readonly config: WebhookAuthConfig,
    @InjectSettings('dispatch') private readonly dispatch: DispatchConfig | null,
  ) {}

  status() {
    const { secret, toleranceMs } = this.config;
    return {
      secret: secret === null ? null : 'file' in secret ? 'file' : 'variable',
      rulesWithOwnSecret: this.dispatch?.rules.filter((r) => r.secret !== undefined).map((r) => r.name) ?? [],
      toleranceSeconds: toleranceMs / 1000,
    };
  }
}

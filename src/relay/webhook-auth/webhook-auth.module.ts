import { Global, Module } from '@nestjs/common';
import { WEBHOOK_AUTH_METRICS, WebhookAuth } from './webhook-auth';

/** Webhook authenticity for the relay (and the signature of the health check's own events); imported only when a secret is configured. */
@Global()
@Module({ providers: [WebhookAuth, ...WEBHOOK_AUTH_METRICS], exports: [WebhookAuth] })
export class WebhookAuthModule {}

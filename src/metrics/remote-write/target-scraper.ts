import { Injectable } from '@nestjs/common';
import type { AxiosInstance } from 'axios';
import { createHttpClient } from '../../common/http-client';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ScrapeTarget } from '../../config/sidecar-config';
import { Exposition, ExpositionError, parseExposition } from './exposition';

export type ScrapeOutcome = { ok: true; exposition: Exposition; scrapedAtMs: number } | { ok: false; reason: string };

/** Largest exposition read from a target; a bigger one fails the scrape rather than the sidecar. */
export const MAX_EXPOSITION_BYTES = 16 * 1024 * 1024;

/** Reads the main container's /metrics in the text format and parses it. */
@Injectable()
export class TargetScraper {
  private readonly http: AxiosInstance = createHttpClient({
    httpAgent: new HttpAgent({ keepAlive: true }),
    // Targets are the pod's own containers, often on a self-signed certificate.
    httpsAgent: new HttpsAgent({ keepAlive: true, rejectUnauthorized: false }),
    // The pod's own ports: never through an HTTP(S)_PROXY from the environment.
    proxy: false,
    validateStatus: () => true,
    maxRedirects: 0,
    responseType: 'text',
    maxContentLength: MAX_EXPOSITION_BYTES,
    headers: { Accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1' },
  });

  async scrape(target: ScrapeTarget, timeoutMs: number, cancel?: AbortSignal): Promise<ScrapeOutcome> {
    const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
    let text: string;
    try {
      const res = await this.http.get<string>(target.url, { signal: cancel ? AbortSignal.any([cancel, timeout]) : timeout });
      if (res.status < 200 || res.status > 299) return { ok: false, reason: `answered ${res.status}` };
      text = String(res.data);
    } catch (e) {
      if (timeout.aborted) return { ok: false, reason: `no answer within ${timeoutMs} ms` };
      const err = e as { code?: string; message: string };
      return { ok: false, reason: err.code ? `${err.code} ${err.message}` : err.message };
    }
    const scrapedAtMs = Date.now();
    try {
      return { ok: true, exposition: parseExposition(text), scrapedAtMs };
    } catch (e) {
      if (e instanceof ExpositionError) return { ok: false, reason: `cannot parse the exposition: ${e.message}` };
      throw e;
    }
  }
}

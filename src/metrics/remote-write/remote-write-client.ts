import { Injectable, Logger } from '@nestjs/common';
import type { AxiosInstance } from 'axios';
import { createHttpClient } from '../../common/http-client';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import { retryAfterMs } from '../../common/retry-policy';
import { InjectSettings } from '../../config/settings';
import type { RemoteWriteConfig } from '../../config/sidecar-config';
import { PushResult, resultOfStatus } from './delivery-policy';

/** pod-sidecar/<version>, from the package.json shipped beside dist/ (and src/). */
export const USER_AGENT = (() => {
  try {
    return `pod-sidecar/${(JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version}`;
  } catch {
    return 'pod-sidecar';
  }
})();

export interface SendOutcome {
  result: PushResult;
  status?: number;
  /** From the answer's Retry-After header, when it has one. */
  retryAfterMs?: number | null;
  /** For the log: the status and the start of the receiver's answer, or the network error. */
  reason: string;
}

/** Longest answer body read from the receiver: enough for its error message. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Sends one snappy-compressed WriteRequest: the remote-write 1.0 headers, basic auth or a
 * bearer token (files re-read on every push, so that a rotated Secret takes effect without
 * a restart), and the TLS settings. Credentials never reach a log line.
 */
@Injectable()
export class RemoteWriteClient {
  private readonly logger = new Logger('RemoteWrite');
  private readonly http: AxiosInstance;
  /** The last secret read from each file, used when a re-read fails mid-rotation. */
  private readonly lastSecrets = new Map<string, string>();

  constructor(@InjectSettings('remoteWrite') private readonly config: RemoteWriteConfig) {
    const { tls } = this.config;
    this.http = createHttpClient({
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 1 }),
      httpsAgent: new HttpsAgent({
        keepAlive: true,
        maxSockets: 1,
        rejectUnauthorized: !tls.insecureSkipVerify,
        ca: tls.caFile ? readFileSync(tls.caFile) : undefined,
        cert: tls.certFile ? readFileSync(tls.certFile) : undefined,
        key: tls.keyFile ? readFileSync(tls.keyFile) : undefined,
      }),
      validateStatus: () => true,
      maxRedirects: 0,
      responseType: 'text',
      maxContentLength: MAX_ANSWER_BYTES,
      maxBodyLength: Infinity,
    });
  }

  /**
   * One attempt. Resolves null when `cancel` aborted it (the push was dropped or the final
   * push ran out of time): then nothing is known about its fate.
   */
  async send(body: Buffer, cancel: AbortSignal, timeoutMs: number): Promise<SendOutcome | null> {
    const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
    const headers: Record<string, string> = {
      ...Object.fromEntries(this.config.headers),
      'Content-Encoding': 'snappy',
      'Content-Type': 'application/x-protobuf',
      'X-Prometheus-Remote-Write-Version': '0.1.0',
      'User-Agent': USER_AGENT,
    };
    const authorization = await this.authorization();
    if (authorization) headers.Authorization = authorization;
    try {
      const res = await this.http.post<string>(this.config.url, body, { headers, signal: AbortSignal.any([cancel, timeout]) });
      const result = resultOfStatus(res.status);
      const answer = typeof res.data === 'string' ? res.data.trim().slice(0, 256) : '';
      const retryAfter: unknown = res.headers['retry-after'];
      return {
        result,
        status: res.status,
        retryAfterMs: retryAfterMs(typeof retryAfter === 'string' ? retryAfter : undefined),
        reason: answer ? `answered ${res.status}: ${answer}` : `answered ${res.status}`,
      };
    } catch (e) {
      if (cancel.aborted) return null;
      if (timeout.aborted) return { result: 'network_error', reason: `no answer within ${timeoutMs} ms` };
      const err = e as { code?: string; message: string };
      return { result: 'network_error', reason: err.code ? `${err.code} ${err.message}` : err.message };
    }
  }

  private async authorization(): Promise<string | undefined> {
    const { auth } = this.config;
    if (auth.kind === 'basic') {
      const password = 'file' in auth.password ? await this.secretFrom(auth.password.file) : auth.password.value;
      return `Basic ${Buffer.from(`${auth.username}:${password}`).toString('base64')}`;
    }
    if (auth.kind === 'bearer') return `Bearer ${await this.secretFrom(auth.tokenFile)}`;
    return undefined;
  }

  private async secretFrom(file: string): Promise<string> {
    try {
      const secret = (await readFile(file, 'utf8')).trim();
      if (secret === '') throw new Error('the file is empty');
      this.lastSecrets.set(file, secret);
      return secret;
    } catch (e) {
      const last = this.lastSecrets.get(file);
      this.logger.warn({
        msg: 'cannot re-read a remote-write credential file; using the last one read',
        file,
        reason: (e as Error).message,
        haveLast: last !== undefined,
      });
      return last ?? '';
    }
  }
}

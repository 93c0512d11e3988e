import { Injectable } from '@nestjs/common';
import type { AxiosInstance } from 'axios';
import { createHttpClient } from '../common/http-client';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { CensusConfig, LoadSourceConfig, UpstreamCheckConfig } from '../config/sidecar-config';
import { CensusReading, readCensus } from './census';
import type { CheckObservation, LoadReading } from './agent-state';

/** The most of a load source's answer that is read; health checks read none of their bodies, or only the first keepBodyBytes. */
export const LOAD_ANSWER_LIMIT = 64 * 1024;

/**
 * The agent's HTTP: one GET per upstream check (the status decides; the body is not read,
 * so an HTML page or a huge body changes nothing, except for the first few bytes a check
 * may keep for the report) and one GET of the load source's JSON, bounded in size. Each
 * request has a total deadline; none throws.
 */
@Injectable()
export class UpstreamClient {
  private readonly http: AxiosInstance = createHttpClient({
    // A fresh connection per poll: a pooled socket that the upstream closed between polls
    // would fail a check that says nothing about the upstream.
    httpAgent: new HttpAgent({ keepAlive: false }),
    httpsAgent: new HttpsAgent({ keepAlive: false }),
    validateStatus: () => true,
    maxRedirects: 0,
    maxContentLength: LOAD_ANSWER_LIMIT,
    maxBodyLength: LOAD_ANSWER_LIMIT,
    headers: { 'User-Agent': 'pod-sidecar-agent' },
  });

  /** One check, with its retries after connection failures and timeouts (never after an answer). */
  async check(u: UpstreamCheckConfig, stop: AbortSignal): Promise<CheckObservation> {
    const started = performance.now();
    let attempt = await this.attempt(u, stop);
    for (let retry = 0; retry < u.retries && !attempt.reachable && !stop.aborted; retry++) attempt = await this.attempt(u, stop);
    return { ...attempt, durationMs: performance.now() - started };
  }

  private async attempt(u: UpstreamCheckConfig, stop: AbortSignal): Promise<Omit<CheckObservation, 'durationMs'>> {
    const deadline = AbortSignal.timeout(u.timeoutMs);
    const base = { name: u.name, pending: false };
    const signal = AbortSignal.any([deadline, stop]);
    try {
      const res = await this.http.get<Readable>(u.url.href, { responseType: 'stream', signal });
      res.data.on('error', () => undefined);
      const kept = u.keepBodyBytes ? { body: await readBodyStart(res.data, u.keepBodyBytes, signal) } : {};
      res.data.destroy();
      const ok = u.expectStatus.some(([min, max]) => res.status >= min && res.status <= max);
      return {
        ...base,
        ok,
        softDown: !ok && u.softDown.statuses.includes(res.status),
        reachable: true,
        statusCode: res.status,
        timedOut: false,
        error: null,
        ...kept,
      };
    } catch (e) {
      const timedOut = deadline.aborted;
      return {
        ...base,
        ok: false,
        softDown: timedOut && u.softDown.onTimeout,
        reachable: false,
        statusCode: null,
        timedOut,
        error: timedOut ? `no answer within ${u.timeoutMs / 1000} s` : describeError(e),
      };
    }
  }

  /** prosody's mod_muc_census answer, on the conference host's virtual host; never throws. */
  async census(c: CensusConfig, stop: AbortSignal): Promise<CensusReading> {
    const deadline = AbortSignal.timeout(c.timeoutMs);
    try {
      const res = await this.http.get<string>(c.url.href, {
        responseType: 'text',
        transformResponse: (d: string) => d,
        headers: { Host: c.host },
        signal: AbortSignal.any([deadline, stop]),
      });
      if (res.status < 200 || res.status > 299) return { ok: false, error: `answered ${res.status}` };
      return readCensus(res.data);
    } catch (e) {
      if (deadline.aborted) return { ok: false, error: `no answer within ${c.timeoutMs / 1000} s` };
      const message = (e as Error).message ?? '';
      if (/maxContentLength/.test(message)) return { ok: false, error: `answer larger than ${LOAD_ANSWER_LIMIT / 1024} KiB` };
      return { ok: false, error: describeError(e) };
    }
  }

  /** The number at the source's field, or why there is none. */
  async readLoad(source: LoadSourceConfig, stop: AbortSignal): Promise<LoadReading> {
    const deadline = AbortSignal.timeout(source.timeoutMs);
    let body: string;
    try {
      const res = await this.http.get<string>(source.url.href, {
        responseType: 'text',
        transformResponse: (d: string) => d,
        signal: AbortSignal.any([deadline, stop]),
      });
      if (res.status < 200 || res.status > 299) return { value: null, error: `answered ${res.status}` };
      body = res.data;
    } catch (e) {
      if (deadline.aborted) return { value: null, error: `no answer within ${source.timeoutMs / 1000} s` };
      const message = (e as Error).message ?? '';
      if (/maxContentLength/.test(message)) return { value: null, error: `answer larger than ${LOAD_ANSWER_LIMIT / 1024} KiB` };
      return { value: null, error: describeError(e) };
    }
    return readField(body, source);
  }
}

/** The number at `source.path` in the JSON text `body`, and those of its extraFields that are numbers. */
export function readField(body: string, source: Pick<LoadSourceConfig, 'field' | 'path' | 'extraFields'>): LoadReading {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { value: null, error: `answer is not JSON (starts ${JSON.stringify(body.trimStart().slice(0, 24))})` };
  }
  const reading = numberAt(doc, source.path, source.field);
  if (source.extraFields) {
    const extra: Record<string, number> = {};
    for (const [name, path] of Object.entries(source.extraFields)) {
      const v = numberAt(doc, path, name).value;
      if (v !== null) extra[name] = v;
    }
    reading.extra = extra;
  }
  return reading;
}

function numberAt(doc: unknown, path: string[], field: string): LoadReading {
  let at: unknown = doc;
  for (const step of path) {
    if (at !== null && typeof at === 'object' && Object.hasOwn(at, step)) at = (at as Record<string, unknown>)[step];
    else return { value: null, error: `no field ${field} in the answer` };
  }
  if (typeof at !== 'number' || !Number.isFinite(at)) {
    return { value: null, error: `${field} is ${at === null ? 'null' : Array.isArray(at) ? 'a list' : typeof at}, not a number` };
  }
  return { value: at, error: null };
}

/**
 * The first `limit` bytes of a body as text, trimmed (a character cut at the limit is left
 * out): what arrived before the limit, the end, an error or `signal`, whichever comes
 * first. Never throws; the caller destroys the stream.
 */
function readBodyStart(body: Readable, limit: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      body.off('data', onData).off('end', done).off('error', done).off('close', done);
      signal.removeEventListener('abort', done);
      resolve(new StringDecoder('utf8').write(Buffer.concat(chunks).subarray(0, limit)).trim());
    };
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(b);
      size += b.length;
      if (size >= limit) done();
    };
    if (signal.aborted) return done();
    signal.addEventListener('abort', done);
    body.on('data', onData).on('end', done).on('error', done).on('close', done);
  });
}

function describeError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const message = err.message || 'request failed';
  return err.code && !message.includes(err.code) ? `${err.code} ${message}` : message;
}

import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';
import { headerNameIs } from '../forwarding';
import { type SecretSet, sha256 } from './secret-set';

/**
 * Whether an event proves its origin, by the scheme its headers name. Pure: the secrets,
 * the clock and the tolerance are arguments, so that every rule is unit-tested.
 *
 * | scheme   | header(s)                                         | proof                                              |
 * |----------|---------------------------------------------------|----------------------------------------------------|
 * | standard | webhook-id, webhook-timestamp, webhook-signature | `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, key of a `whsec_` secret |
 * | forgejo  | X-Forgejo-Signature                               | hex HMAC-SHA256 of the body                        |
 * | gitea    | X-Gitea-Signature                                 | hex HMAC-SHA256 of the body                        |
 * | github   | X-Hub-Signature-256 (or X-Hub-Signature)          | `sha256=<hex HMAC-SHA256 of the body>`             |
 * | gitlab   | X-Gitlab-Token                                    | equal to a secret                                  |
 *
 * When an event carries several proof headers (Forgejo sends its own and Gitea's; Gitea
 * its own and X-Hub-Signature-256), the first in the table's order is the one checked.
 * Every comparison is constant-time, and the HMACs are over the body's bytes as they arrived.
 */

export type RejectReason = 'missing_signature' | 'malformed_signature' | 'unsupported_scheme' | 'bad_signature' | 'stale_timestamp';
export type Sender = 'github' | 'bitbucket' | 'gitea' | 'forgejo' | 'gitlab' | 'standard' | 'unknown';

export const REJECT_REASONS: readonly RejectReason[] = [
  'missing_signature',
  'malformed_signature',
  'unsupported_scheme',
  'bad_signature',
  'stale_timestamp',
];
export const SENDERS: readonly Sender[] = ['github', 'bitbucket', 'gitea', 'forgejo', 'gitlab', 'standard', 'unknown'];

export interface Verified {
  ok: true;
  sender: Sender;
}

export interface Rejected {
  ok: false;
  reason: RejectReason;
  sender: Sender;
  /** For the log and the 401's message; never a signature or a secret. */
  message: string;
  /** The proof was an HMAC of the body and the body is JSON: a client may have re-serialised it. */
  maybeReserialised?: boolean;
}

export type Verdict = Verified | Rejected;

/** The headers verification looks at, found in one pass over rawHeaders. */
interface Found {
  standardSignature?: string[];
  standardId?: string[];
  standardTimestamp?: string[];
  forgejo?: string[];
  gitea?: string[];
  hub256?: string[];
  hub?: string[];
  gitlabToken?: string[];
  /** Headers that name a sender without proving anything (for the metrics label of a refusal). */
  hint?: Sender;
}

function scan(rawHeaders: readonly string[]): Found {
  const f: Found = {};
  const add = (key: Exclude<keyof Found, 'hint'>, v: string) => (f[key] ??= []).push(v);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const value = rawHeaders[i + 1];
    // Only names that could matter are compared: the length is checked first.
    switch (name.length) {
      case 10:
        if (headerNameIs(name, 'webhook-id')) add('standardId', value);
        break;
      case 14:
        if (headerNameIs(name, 'x-gitlab-token')) add('gitlabToken', value);
        else if (headerNameIs(name, 'x-gitlab-event')) f.hint ??= 'gitlab';
        else if (headerNameIs(name, 'x-github-event')) f.hint ??= 'github';
        break;
      case 15:
        if (headerNameIs(name, 'x-hub-signature')) add('hub', value);
        else if (headerNameIs(name, 'x-forgejo-event')) f.hint ??= 'forgejo';
        break;
      case 17:
        if (headerNameIs(name, 'webhook-timestamp')) add('standardTimestamp', value);
        else if (headerNameIs(name, 'webhook-signature')) add('standardSignature', value);
        else if (headerNameIs(name, 'x-gitea-signature')) add('gitea', value);
        break;
      case 19:
        if (headerNameIs(name, 'x-hub-signature-256')) add('hub256', value);
        else if (headerNameIs(name, 'x-forgejo-signature')) add('forgejo', value);
        break;
      case 11:
        if (headerNameIs(name, 'x-event-key')) f.hint ??= 'bitbucket';
        break;
      case 13:
        if (headerNameIs(name, 'x-gitea-event')) f.hint ??= 'gitea';
        break;
    }
  }
  return f;
}

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

/**
 * Verifies one event. `body`: the bytes that arrived (null for none); `nowMs`: the clock
 * (Date.now()); `toleranceMs`: how far a Standard Webhooks timestamp may be from it.
 */
export function verifyWebhook(
  rawHeaders: readonly string[],
  body: Buffer | null,
  secrets: SecretSet,
  nowMs: number,
  toleranceMs: number,
): Verdict {
  const f = scan(rawHeaders);
  const bytes = body ?? EMPTY;
  if (f.standardSignature !== undefined || f.standardId !== undefined || f.standardTimestamp !== undefined) {
    return verifyStandard(f, bytes, secrets, nowMs, toleranceMs);
  }
  if (f.forgejo !== undefined) return verifyHexHmac(f.forgejo, 'forgejo', 'X-Forgejo-Signature', bytes, secrets);
  if (f.gitea !== undefined) return verifyHexHmac(f.gitea, 'gitea', 'X-Gitea-Signature', bytes, secrets);
  if (f.hub256 !== undefined || f.hub !== undefined) return verifyHub(f, bytes, secrets);
  if (f.gitlabToken !== undefined) return verifyGitlab(f.gitlabToken, secrets);
  const sender = f.hint ?? 'unknown';
  return reject('missing_signature', sender, `the event carries no proof of origin (${EXPECTED})`);
}

const EMPTY = Buffer.alloc(0);
const EXPECTED = 'expected X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature, X-Gitlab-Token or webhook-signature';

function reject(reason: RejectReason, sender: Sender, message: string, body?: Buffer): Rejected {
  const r: Rejected = { ok: false, reason, sender, message };
  if (body !== undefined && isJson(body)) {
    r.maybeReserialised = true;
    r.message +=
      '; the body is valid JSON: if the smee client re-serialises JSON bodies (the npm smee-client does), the bytes that were signed are not the bytes that arrived (use a client that keeps the body as it arrived, such as gosmee)';
  }
  return r;
}

/** Only asked when a signature failed: whether the body parses as JSON (an object or array). */
function isJson(body: Buffer): boolean {
  let i = 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  if (body[i] !== 0x7b && body[i] !== 0x5b) return false;
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function one(values: string[], sender: Sender, header: string): string | Rejected {
  if (values.length > 1) return reject('malformed_signature', sender, `${header} appears ${values.length} times`);
  return values[0].trim();
}

/** Whether a hex HMAC-SHA256 of `parts` under any of the keys equals `hex` (already checked to be 64 hex digits). */
function hmacMatches(keys: readonly KeyObject[], parts: readonly Buffer[], given: Buffer): boolean {
  let match = false;
  for (const key of keys) {
    const h = createHmac('sha256', key);
    for (const p of parts) h.update(p);
    // Every key is tried, whichever matches: the time does not tell which line did.
    if (timingSafeEqual(h.digest(), given)) match = true;
  }
  return match;
}

function verifyHexHmac(values: string[], sender: Sender, header: string, body: Buffer, secrets: SecretSet): Verdict {
  const v = one(values, sender, header);
  if (typeof v !== 'string') return v;
  if (!HEX_SHA256.test(v)) return reject('malformed_signature', sender, `${header} is not a hex HMAC-SHA256 (64 hex digits)`);
  if (hmacMatches(secrets.hmacKeys, [body], Buffer.from(v, 'hex'))) return { ok: true, sender };
  return reject('bad_signature', sender, `${header} does not match the body under any configured secret`, body);
}

function verifyHub(f: Found, body: Buffer, secrets: SecretSet): Verdict {
  // Bitbucket Cloud sends X-Hub-Signature with a sha256= value; GitHub adds X-Hub-Signature-256.
  const sender: Sender = f.hint === 'bitbucket' ? 'bitbucket' : 'github';
  const header = f.hub256 !== undefined ? 'X-Hub-Signature-256' : 'X-Hub-Signature';
  const v = one(f.hub256 ?? f.hub!, sender, header);
  if (typeof v !== 'string') return v;
  const eq = v.indexOf('=');
  const algorithm = eq === -1 ? '' : v.slice(0, eq).toLowerCase();
  if (algorithm !== 'sha256') {
    // GitHub's legacy X-Hub-Signature carries sha1=: not accepted as proof.
    return eq === -1
      ? reject('malformed_signature', sender, `${header} is not sha256=<hex>`)
      : reject('unsupported_scheme', sender, `${header} uses ${JSON.stringify(algorithm.slice(0, 16))}; only sha256 is accepted`);
  }
  const hex = v.slice(eq + 1);
  if (!HEX_SHA256.test(hex)) return reject('malformed_signature', sender, `${header} is not sha256=<64 hex digits>`);
  if (hmacMatches(secrets.hmacKeys, [body], Buffer.from(hex, 'hex'))) return { ok: true, sender };
  return reject('bad_signature', sender, `${header} does not match the body under any configured secret`, body);
}

function verifyGitlab(values: string[], secrets: SecretSet): Verdict {
  const v = one(values, 'gitlab', 'X-Gitlab-Token');
  if (typeof v !== 'string') return v;
  const given = sha256(Buffer.from(v, 'utf8'));
  let match = false;
  for (const d of secrets.tokenDigests) if (timingSafeEqual(given, d)) match = true;
  return match ? { ok: true, sender: 'gitlab' } : reject('bad_signature', 'gitlab', 'X-Gitlab-Token does not equal any configured secret');
}

const TIMESTAMP = /^\d{1,15}$/;
const BASE64_SHA256 = /^[A-Za-z0-9+/]{43}=$/;

function verifyStandard(f: Found, body: Buffer, secrets: SecretSet, nowMs: number, toleranceMs: number): Verdict {
  const sender: Sender = 'standard';
  if (f.standardId === undefined || f.standardTimestamp === undefined || f.standardSignature === undefined) {
    return reject('malformed_signature', sender, 'Standard Webhooks needs webhook-id, webhook-timestamp and webhook-signature together');
  }
  const id = one(f.standardId, sender, 'webhook-id');
  if (typeof id !== 'string') return id;
  const ts = one(f.standardTimestamp, sender, 'webhook-timestamp');
  if (typeof ts !== 'string') return ts;
  const sig = one(f.standardSignature, sender, 'webhook-signature');
  if (typeof sig !== 'string') return sig;
  if (!TIMESTAMP.test(ts)) return reject('malformed_signature', sender, 'webhook-timestamp is not whole seconds since the epoch');
  const skewMs = nowMs - Number(ts) * 1000;
  if (Math.abs(skewMs) > toleranceMs) {
    return reject(
      'stale_timestamp',
      sender,
      `webhook-timestamp is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'old' : 'in the future'}; the tolerance is ${toleranceMs / 1000} s (WEBHOOK_TOLERANCE_SECONDS)`,
    );
  }
  // Space-separated `version,signature` pairs; v1 is HMAC-SHA256. Others (v1a: asymmetric) are not checked.
  const given: Buffer[] = [];
  let entries = 0;
  for (const entry of sig.split(' ')) {
    if (entry === '') continue;
    entries++;
    const comma = entry.indexOf(',');
    if (comma === -1) return reject('malformed_signature', sender, 'webhook-signature is not a list of version,signature pairs');
    if (entry.slice(0, comma) !== 'v1') continue;
    const b64 = entry.slice(comma + 1);
    if (!BASE64_SHA256.test(b64)) return reject('malformed_signature', sender, 'a v1 webhook-signature is not base64 of an HMAC-SHA256');
    given.push(Buffer.from(b64, 'base64'));
  }
  if (entries === 0) return reject('malformed_signature', sender, 'webhook-signature is empty');
  if (given.length === 0) return reject('unsupported_scheme', sender, 'webhook-signature has no v1 (HMAC-SHA256) signature');
  if (secrets.standardKeys.length === 0) {
    return reject('bad_signature', sender, 'no whsec_ secret is configured for Standard Webhooks');
  }
  const prefix = Buffer.from(`${id}.${ts}.`, 'utf8');
  let match = false;
  for (const g of given) if (hmacMatches(secrets.standardKeys, [prefix, body], g)) match = true;
  return match
    ? { ok: true, sender }
    : reject(
        'bad_signature',
        sender,
        'no v1 webhook-signature matches webhook-id, webhook-timestamp and the body under any whsec_ secret',
        body,
      );
}

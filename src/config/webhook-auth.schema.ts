import { z } from 'zod';
import type { DispatchConfig } from './sidecar-config';

/**
 * Webhook authenticity: the settings that switch it on, and how a secrets file reads.
 *
 *   WEBHOOK_SECRET_FILE        a file with one secret per line (every line is accepted), re-read when it changes
 *   WEBHOOK_SECRET             the same as a variable (for local use); one of the two
 *   WEBHOOK_TOLERANCE_SECONDS  how far a Standard Webhooks timestamp may be from now (default 300)
 *
 * A dispatch rule may carry its own `secret` or `secretFile` (dispatch.schema.ts): that
 * rule's events are verified with it instead.
 */

const text = z.string().trim();

export const WEBHOOK_AUTH_SETTINGS = {
  WEBHOOK_SECRET_FILE: text.min(1).optional(),
  WEBHOOK_SECRET: text.min(1).optional(),
  WEBHOOK_TOLERANCE_SECONDS: text.regex(/^\d+$/, 'expected whole seconds').transform(Number)
    .refine((n) => n >= 1 && n <= 86_400, 'expected whole seconds from 1 to 86400').prefault('300'),
};

/** Where a set of secrets comes from: a file (re-read when it changes) or a value given in the configuration. */
export type SecretSourceConfig = { file: string } | { value: string };

export interface WebhookAuthConfig {
  /** WEBHOOK_SECRET_FILE or WEBHOOK_SECRET; null when only dispatch rules carry secrets. */
  secret: SecretSourceConfig | null;
  /** Standard Webhooks: the largest distance between webhook-timestamp and now. */
  toleranceMs: number;
}

/** The prefix of a Standard Webhooks secret; what follows it is the key, in base64. */
export const STANDARD_SECRET_PREFIX = 'whsec_';

/**
 * The secrets in a file's (or a variable's) text: one per line, surrounding whitespace
 * (a trailing newline, CRLF) not part of it, blank lines skipped. Problems never quote a
 * secret: a line is named by its number.
 */
export function readSecrets(text: string): { secrets: string[]; problems: string[] } {
  const secrets: string[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    const secret = line.trim();
    if (secret === '') return;
    if (secret.startsWith(STANDARD_SECRET_PREFIX) && standardKey(secret) === null) {
      problems.push(`line ${i + 1}: a ${STANDARD_SECRET_PREFIX} secret must be followed by its key in base64`);
      return;
    }
    secrets.push(secret);
  });
  if (secrets.length === 0 && problems.length === 0) problems.push('no secret in it (one secret per line)');
  return { secrets, problems };
}

/** The key of a `whsec_` secret, or null when what follows the prefix is not base64 of at least one byte. */
export function standardKey(secret: string): Buffer | null {
  const b64 = secret.slice(STANDARD_SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 === 1) return null;
  const key = Buffer.from(b64, 'base64');
  return key.length > 0 ? key : null;
}

type Env = Record<string, string | undefined>;

/**
 * The webhook settings as read from `raw` (the validated settings' text), or null when no
 * secret is set anywhere. `dispatch` is checked for rules that carry their own secret.
 */
export function toWebhookAuthConfig(s: { WEBHOOK_SECRET_FILE?: string; WEBHOOK_SECRET?: string; WEBHOOK_TOLERANCE_SECONDS: number }, dispatch: DispatchConfig | null): WebhookAuthConfig | null {
  const secret: SecretSourceConfig | null = s.WEBHOOK_SECRET_FILE !== undefined ? { file: s.WEBHOOK_SECRET_FILE }
    : s.WEBHOOK_SECRET !== undefined ? { value: s.WEBHOOK_SECRET } : null;
  const ruleSecrets = dispatch?.rules.some((r) => r.secret !== undefined) ?? false;
  if (secret === null && !ruleSecrets) return null;
  return { secret, toleranceMs: s.WEBHOOK_TOLERANCE_SECONDS * 1000 };
}

/**
 * What is wrong with the secrets at start-up: both settings at once, a file that cannot be
 * read or holds no secret, the same for each dispatch rule's own. Messages name the file or
 * setting and a line number, never a secret.
 */
export function webhookAuthProblems(raw: Env, dispatch: DispatchConfig | null, readFile: (p: string) => string, configFile: string | undefined): string[] {
  const problems: string[] = [];
  const file = raw.WEBHOOK_SECRET_FILE?.trim();
  const value = raw.WEBHOOK_SECRET;
  if (file && value !== undefined && value.trim() !== '') {
    problems.push('WEBHOOK_SECRET_FILE and WEBHOOK_SECRET are both set: set one (the file in a cluster, the variable for local use)');
  }
  if (file) problems.push(...sourceProblems({ file }, readFile).map((p) => `WEBHOOK_SECRET_FILE=${JSON.stringify(file)}: ${p}`));
  else if (value !== undefined && value.trim() !== '') problems.push(...sourceProblems({ value }, readFile).map((p) => `WEBHOOK_SECRET: ${p}`));
  for (const rule of dispatch?.rules ?? []) {
    if (rule.secret === undefined) continue;
    const at = `${configFile ?? 'SIDECAR_CONFIG'}: dispatch.rules[${JSON.stringify(rule.value)}]`;
    const where = 'file' in rule.secret ? `${at}.secretFile (${JSON.stringify(rule.secret.file)})` : `${at}.secret`;
    problems.push(...sourceProblems(rule.secret, readFile).map((p) => `${where}: ${p}`));
  }
  return problems;
}

function sourceProblems(source: SecretSourceConfig, readFile: (p: string) => string): string[] {
  if ('value' in source) return readSecrets(source.value).problems;
  let text: string;
  try {
    text = readFile(source.file);
  } catch (e) {
    return [`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`];
  }
  return readSecrets(text).problems;
}

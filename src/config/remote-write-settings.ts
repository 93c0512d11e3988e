import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { parseDuration } from './config.schema';

type Raw = Record<string, string | undefined>;

/**
 * The remote-write rules that span several settings or need the files they name: auth
 * settings that go together or exclude each other, and secret, CA and client-certificate
 * files that must be readable and well-formed at start-up rather than at the first push.
 * Works on the raw text, so that its problems are listed beside the schema's. Messages
 * name files, never their contents.
 */
export function remoteWriteProblems(raw: Raw, readFile: (path: string) => string): string[] {
  if (raw.PROMETHEUS_REMOTE_WRITE_URL === undefined) return [];
  const problems: string[] = [];
  const has = (name: string) => raw[name] !== undefined;

  if (has('REMOTE_WRITE_USERNAME') && !has('REMOTE_WRITE_PASSWORD') && !has('REMOTE_WRITE_PASSWORD_FILE')) {
    problems.push('REMOTE_WRITE_USERNAME: basic auth needs REMOTE_WRITE_PASSWORD_FILE (or REMOTE_WRITE_PASSWORD) too');
  }
  if ((has('REMOTE_WRITE_PASSWORD') || has('REMOTE_WRITE_PASSWORD_FILE')) && !has('REMOTE_WRITE_USERNAME')) {
    problems.push('REMOTE_WRITE_PASSWORD_FILE/REMOTE_WRITE_PASSWORD: basic auth needs REMOTE_WRITE_USERNAME too');
  }
  if (has('REMOTE_WRITE_PASSWORD') && has('REMOTE_WRITE_PASSWORD_FILE')) {
    problems.push('REMOTE_WRITE_PASSWORD and REMOTE_WRITE_PASSWORD_FILE: set one of them, not both');
  }
  if (has('REMOTE_WRITE_USERNAME') && has('REMOTE_WRITE_BEARER_TOKEN_FILE')) {
    problems.push('REMOTE_WRITE_USERNAME and REMOTE_WRITE_BEARER_TOKEN_FILE: use basic auth or a bearer token, not both');
  }
  if (has('REMOTE_WRITE_CERT_FILE') !== has('REMOTE_WRITE_KEY_FILE')) {
    problems.push('REMOTE_WRITE_CERT_FILE and REMOTE_WRITE_KEY_FILE: a client certificate needs both');
  }
  const min = parseDuration(raw.REMOTE_WRITE_MIN_BACKOFF?.trim() ?? '30ms');
  const max = parseDuration(raw.REMOTE_WRITE_MAX_BACKOFF?.trim() ?? '5s');
  if (min !== null && max !== null && min > max) {
    problems.push(`REMOTE_WRITE_MAX_BACKOFF=${JSON.stringify(raw.REMOTE_WRITE_MAX_BACKOFF ?? '5s')}: expected at least REMOTE_WRITE_MIN_BACKOFF`);
  }

  const read = (name: string): string | undefined => {
    const path = raw[name]?.trim();
    if (path === undefined) return undefined;
    try {
      return readFile(path);
    } catch (e) {
      problems.push(`${name}=${JSON.stringify(path)}: cannot read it (${(e as Error).message})`);
      return undefined;
    }
  };
  for (const name of ['REMOTE_WRITE_PASSWORD_FILE', 'REMOTE_WRITE_BEARER_TOKEN_FILE']) {
    const text = read(name);
    if (text !== undefined && text.trim() === '') problems.push(`${name}=${JSON.stringify(raw[name])}: the file is empty`);
  }
  const ca = read('REMOTE_WRITE_CA_FILE');
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch {
      problems.push(`REMOTE_WRITE_CA_FILE=${JSON.stringify(raw.REMOTE_WRITE_CA_FILE)}: expected PEM certificates`);
    }
  }
  const cert = read('REMOTE_WRITE_CERT_FILE');
  const key = read('REMOTE_WRITE_KEY_FILE');
  if (cert !== undefined && key !== undefined) {
    try {
      createSecureContext({ cert, key });
    } catch (e) {
      problems.push(`REMOTE_WRITE_CERT_FILE=${JSON.stringify(raw.REMOTE_WRITE_CERT_FILE)} and REMOTE_WRITE_KEY_FILE=${JSON.stringify(raw.REMOTE_WRITE_KEY_FILE)}: not a usable certificate and key (${(e as Error).message})`);
    }
  }
  return problems;
}

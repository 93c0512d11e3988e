import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './load-config';
import { scrapeTargets } from './sidecar-config';

const URL_ = 'http://prometheus:9090/api/v1/write';
const read = (p: string) => readFileSync(p, 'utf8');

function ok(env: Record<string, string>) {
  const r = loadConfig(env, read);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

function problems(env: Record<string, string>): string[] {
  const r = loadConfig(env, read);
  if (r.ok) throw new Error('expected the configuration to be refused');
  return r.problems;
}

describe('remote write settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rw-settings-'));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  let cert: string;
  let key: string;
  let otherKey: string;
  beforeAll(() => {
    cert = join(dir, 'client.crt');
    key = join(dir, 'client.key');
    otherKey = join(dir, 'other.key');
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=client');
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey);
  });

  it('switches remote write on by itself (the metrics-pusher deployment), with the documented defaults', () => {
    const c = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_ });
    expect(c.relay).toBeNull();
    expect(c.healthCheck).toBeNull();
    expect(c.remoteWrite).toEqual({
      url: URL_,
      instance: hostname(),
      intervalMs: 30_000,
      timeoutMs: 30_000,
      queueSize: 60,
      minBackoffMs: 30,
      maxBackoffMs: 5000,
      labels: [],
      headers: [],
      auth: { kind: 'none' },
      tls: { caFile: null, certFile: null, keyFile: null, insecureSkipVerify: false },
      scrape: { targets: [], timeoutMs: 10_000 },
    });
    expect(ok({ DOWNSTREAM_SERVICE_URL: 'http://app:3000' }).remoteWrite).toBeNull();
  });

  it('names PROMETHEUS_REMOTE_WRITE_URL among the switches when nothing is configured', () => {
    expect(problems({})[0]).toContain('remote write: set PROMETHEUS_REMOTE_WRITE_URL');
  });

  it('takes Go-style durations, the queue size and extra labels', () => {
    const c = ok({
      PROMETHEUS_REMOTE_WRITE_URL: URL_,
      PUSH_INTERVAL: '1m30s',
      REMOTE_WRITE_TIMEOUT: '500ms',
      REMOTE_WRITE_QUEUE_SIZE: '5',
      REMOTE_WRITE_LABELS: ' namespace=team-a , pod=web-7d9f, cluster = eu-1 ,',
      REMOTE_WRITE_HEADERS: 'X-Scope-OrgID=tenant-1',
    }).remoteWrite!;
    expect([c.intervalMs, c.timeoutMs, c.queueSize]).toEqual([90_000, 500, 5]);
    expect(c.labels).toEqual([['namespace', 'team-a'], ['pod', 'web-7d9f'], ['cluster', 'eu-1']]);
    expect(c.headers).toEqual([['X-Scope-OrgID', 'tenant-1']]);
  });

  it('lists every bad label, header and duration at once, without the secret header value', () => {
    const list = problems({
      PROMETHEUS_REMOTE_WRITE_URL: URL_,
      PUSH_INTERVAL: '30 seconds',
      REMOTE_WRITE_QUEUE_SIZE: '0',
      REMOTE_WRITE_LABELS: '__meta=x,9pod=y,pod=,ns=a,ns=b,with-dash=1',
      REMOTE_WRITE_HEADERS: 'Authorization=Bearer s3cret-token',
      REMOTE_WRITE_MIN_BACKOFF: '10s',
    });
    const text = list.join('\n');
    expect(text).toContain('PUSH_INTERVAL="30 seconds": expected a duration');
    expect(text).toContain('REMOTE_WRITE_QUEUE_SIZE="0": expected a whole number above 0');
    expect(text).toContain('label name "__meta" must match');
    expect(text).toContain('label name "9pod" must match');
    expect(text).toContain('label name "with-dash" must match');
    expect(text).toContain('label pod needs a non-empty value');
    expect(text).toContain('label ns is set twice');
    expect(text).toContain('REMOTE_WRITE_HEADERS=(hidden): header Authorization is set by the sidecar');
    expect(text).toContain('REMOTE_WRITE_MAX_BACKOFF="5s": expected at least REMOTE_WRITE_MIN_BACKOFF');
    expect(text).not.toContain('s3cret');
  });

  it('refuses credentials in the URL without showing the password', () => {
    const [p] = problems({ PROMETHEUS_REMOTE_WRITE_URL: 'https://user:hunter2@mimir.example/api/v1/push' });
    expect(p).toContain('expected no credentials in the URL');
    expect(p).not.toContain('hunter2');
  });

  describe('auth and TLS files', () => {
    it('takes basic auth with a password file, or a bearer token file', () => {
      const pw = file('pw', 'secret\n');
      const basic = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_USERNAME: 'u', REMOTE_WRITE_PASSWORD_FILE: pw }).remoteWrite!;
      expect(basic.auth).toEqual({ kind: 'basic', username: 'u', password: { file: pw } });
      const env = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_USERNAME: 'u', REMOTE_WRITE_PASSWORD: 'p' }).remoteWrite!;
      expect(env.auth).toEqual({ kind: 'basic', username: 'u', password: { value: 'p' } });
      const token = file('token', 'abc');
      expect(ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_BEARER_TOKEN_FILE: token }).remoteWrite!.auth).toEqual({ kind: 'bearer', tokenFile: token });
    });

    it('takes a CA file and a matching client certificate and key', () => {
      const c = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_CA_FILE: cert, REMOTE_WRITE_CERT_FILE: cert, REMOTE_WRITE_KEY_FILE: key, REMOTE_WRITE_INSECURE_SKIP_VERIFY: 'true' }).remoteWrite!;
      expect(c.tls).toEqual({ caFile: cert, certFile: cert, keyFile: key, insecureSkipVerify: true });
    });

    it('lists unreadable, empty and malformed files and settings that do not go together, never the password', () => {
      const list = problems({
        PROMETHEUS_REMOTE_WRITE_URL: URL_,
        REMOTE_WRITE_USERNAME: 'u',
        REMOTE_WRITE_PASSWORD: 'pa55word',
        REMOTE_WRITE_PASSWORD_FILE: join(dir, 'missing'),
        REMOTE_WRITE_BEARER_TOKEN_FILE: file('empty', ' \n'),
        REMOTE_WRITE_CA_FILE: file('not-pem', 'hello'),
        REMOTE_WRITE_CERT_FILE: cert,
        REMOTE_WRITE_KEY_FILE: otherKey,
      });
      const text = list.join('\n');
      expect(text).toContain('REMOTE_WRITE_PASSWORD and REMOTE_WRITE_PASSWORD_FILE: set one of them');
      expect(text).toContain('REMOTE_WRITE_USERNAME and REMOTE_WRITE_BEARER_TOKEN_FILE: use basic auth or a bearer token');
      expect(text).toMatch(/REMOTE_WRITE_PASSWORD_FILE=".*missing": cannot read it \(ENOENT/);
      expect(text).toMatch(/REMOTE_WRITE_BEARER_TOKEN_FILE=".*empty": the file is empty/);
      expect(text).toMatch(/REMOTE_WRITE_CA_FILE=".*not-pem": expected PEM certificates/);
      expect(text).toMatch(/REMOTE_WRITE_CERT_FILE=.* and REMOTE_WRITE_KEY_FILE=.*: not a usable certificate and key/);
      expect(list).toHaveLength(6);
      expect(text).not.toContain('pa55word');
    });

    it('needs the other half of basic auth and of a client certificate', () => {
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_USERNAME: 'u' })[0]).toContain('basic auth needs REMOTE_WRITE_PASSWORD_FILE');
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_PASSWORD: 'p' })[0]).toContain('basic auth needs REMOTE_WRITE_USERNAME');
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, REMOTE_WRITE_CERT_FILE: cert })[0]).toContain('a client certificate needs both');
    });

    it('ignores remote-write files while remote write is off', () => {
      expect(ok({ DOWNSTREAM_SERVICE_URL: 'http://app:3000', REMOTE_WRITE_CA_FILE: join(dir, 'missing') }).remoteWrite).toBeNull();
    });
  });

  describe('SCRAPE_TARGETS', () => {
    it('labels each target host:port, the pod host name standing in for loopback', () => {
      const c = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, SCRAPE_TARGETS: 'http://127.0.0.1:8080/metrics, http://localhost:9000/m,https://app.ns.svc/metrics', SCRAPE_TIMEOUT: '2s' }).remoteWrite!;
      expect(c.scrape).toEqual({
        timeoutMs: 2000,
        targets: [
          { url: 'http://127.0.0.1:8080/metrics', instance: `${hostname()}:8080` },
          { url: 'http://localhost:9000/m', instance: `${hostname()}:9000` },
          { url: 'https://app.ns.svc/metrics', instance: 'app.ns.svc:443' },
        ],
      });
    });

    it('adds the path when two targets share host and port; keeps IPv6 brackets', () => {
      expect(scrapeTargets(['http://127.0.0.1:8080/metrics', 'http://localhost:8080/extra', 'http://[fd00::1]/metrics'], 'pod-1').map((t) => t.instance))
        .toEqual(['pod-1:8080/metrics', 'pod-1:8080/extra', '[fd00::1]:80']);
    });

    it('refuses a bad or repeated URL', () => {
      const text = problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, SCRAPE_TARGETS: 'http://a:1/m,ftp://b/m,http://a:1/m' }).join('\n');
      expect(text).toContain('"ftp://b/m": expected an absolute http:// or https:// URL');
      expect(text).toContain('a URL is listed twice');
    });
  });
});

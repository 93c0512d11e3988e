import { EXIT_CONFIG, formatProblems, loadConfig } from './load-config';
import { parseDuration } from './config.schema';

const base = { DOWNSTREAM_SERVICE_URL: 'http://app:3000' };

function ok(env: Record<string, string>, file?: string) {
  const r = loadConfig(env, () => {
    if (file === undefined) throw new Error('ENOENT: no such file');
    return file;
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

function problems(env: Record<string, string>, file?: string): string[] {
  const r = loadConfig(env, () => {
    if (file === undefined) throw new Error('ENOENT: no such file');
    return file;
  });
  if (r.ok) throw new Error('expected the configuration to be refused');
  return r.problems;
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = ok(base);
    expect(c.server).toEqual({ relayPort: 8080, managementPort: 9100, listenHost: '0.0.0.0', shutdownTimeoutMs: 20000 });
    expect(c.relay).toMatchObject({ timeoutMs: 30000, maxBodyBytes: 26214400, mode: 'proxy', spoolPath: '/shared/spool' });
    expect(c.relay!.downstreamUrl!.href).toBe('http://app:3000/');
    expect(c.sharedVolume).toEqual({ path: '/shared', healthFilePath: '/shared/health-status.txt' });
    expect(c.log).toEqual({ level: 'info', format: 'json' });
    expect(c.debug.enabled).toBe(false);
    expect(c.healthCheck).toBeNull();
  });

  it('keeps smee-sidecar settings and their defaults', () => {
    const c = ok({ ...base, SMEE_CHANNEL_URL: 'https://smee.io/abc', SHARED_VOLUME_PATH: '/vol' });
    expect(c.healthCheck).toEqual({ channelUrl: 'https://smee.io/abc', timeoutMs: 20000, intervalMs: 30000, insecureSkipVerify: false });
    expect(c.sharedVolume.healthFilePath).toBe('/vol/health-status.txt');
    expect(c.relay!.spoolPath).toBe('/vol/spool');
  });

  it('takes HEALTH_FILE_PATH, booleans and fractional seconds', () => {
    const c = ok({
      ...base,
      SMEE_CHANNEL_URL: 'http://smee/c',
      HEALTH_FILE_PATH: '/x/h.txt',
      INSECURE_SKIP_VERIFY: 'TRUE',
      ENABLE_PPROF: '1',
      HEALTH_CHECK_INTERVAL_SECONDS: '0.5',
    });
    expect(c.sharedVolume.healthFilePath).toBe('/x/h.txt');
    expect(c.healthCheck!.insecureSkipVerify).toBe(true);
    expect(c.healthCheck!.intervalMs).toBe(500);
    expect(c.debug.enabled).toBe(true);
  });

  it('listens on the relay port with only the health check on (smee server monitoring)', () => {
    const c = ok({ SMEE_CHANNEL_URL: 'http://smee/c' });
    expect(c.relay).not.toBeNull();
    expect(c.relay!.downstreamUrl).toBeNull();
  });

  it('treats an empty variable as unset', () => {
    expect(ok({ ...base, RELAY_PORT: '' }).server.relayPort).toBe(8080);
  });

  it('refuses to start with nothing configured and names the switches', () => {
    const [p] = problems({});
    expect(p).toContain('DOWNSTREAM_SERVICE_URL');
    expect(p).toContain('SMEE_CHANNEL_URL');
  });

  it('lists every problem at once, each with name, value and expectation', () => {
    const list = problems({
      DOWNSTREAM_SERVICE_URL: 'ftp://x',
      RELAY_PORT: '70000',
      MANAGEMENT_PORT: 'abc',
      HEALTH_CHECK_TIMEOUT_SECONDS: '0',
      LOG_LEVEL: 'trace',
      RELAY_MODE: 'queue',
      INSECURE_SKIP_VERIFY: 'maybe',
    });
    expect(list).toHaveLength(7);
    expect(list).toEqual(expect.arrayContaining([
      'DOWNSTREAM_SERVICE_URL="ftp://x": expected an absolute http:// or https:// URL',
      'RELAY_PORT="70000": expected a port from 1 to 65535',
      'MANAGEMENT_PORT="abc": expected a TCP port number',
      'HEALTH_CHECK_TIMEOUT_SECONDS="0": expected more than 0 seconds',
      'LOG_LEVEL="trace": expected debug, info, warn or error',
      'RELAY_MODE="queue": expected proxy or spool',
      'INSECURE_SKIP_VERIFY="maybe": expected true or false',
    ]));
  });

  it('never shows a password or a token from a URL, whether or not it parses', () => {
    const list = problems({
      DOWNSTREAM_SERVICE_URL: 'http://user:hunter2pw@',
      SMEE_CHANNEL_URL: 'ftp://smee.example/c?token=hunter2tk',
      UPSTREAM_HEALTH_URLS: 'http://ok.example/health,http://u:hunter2up@/x?api_key=hunter2ak',
    });
    expect(list).toHaveLength(3);
    const message = formatProblems(list);
    for (const secret of ['hunter2pw', 'hunter2tk', 'hunter2up', 'hunter2ak']) expect(message).not.toContain(secret);
    expect(list).toEqual(expect.arrayContaining([
      'DOWNSTREAM_SERVICE_URL="http://***@": expected an absolute http:// or https:// URL',
      'SMEE_CHANNEL_URL="ftp://smee.example/c?token=***": expected an absolute http:// or https:// URL',
    ]));
  });

  it('refuses a relative URL and a body limit that is not a whole number', () => {
    const list = problems({ DOWNSTREAM_SERVICE_URL: '/webhook', RELAY_MAX_BODY_BYTES: '1.5' });
    expect(list).toHaveLength(2);
  });

  describe('spool (RELAY_MODE=spool)', () => {
    it('is off in proxy mode', () => {
      expect(ok(base).spool).toBeNull();
    });

    it('applies the documented defaults', () => {
      expect(ok({ ...base, RELAY_MODE: 'spool', RELAY_TIMEOUT_SECONDS: '7' }).spool).toEqual({
        path: '/shared/spool',
        maxBytes: 1073741824,
        maxAgeMs: 86_400_000,
        retryInitialMs: 1000,
        retryMaxMs: 300_000,
        concurrency: 1,
        dedupHeader: 'X-GitHub-Delivery',
        dedupWindowMs: 3_600_000,
        deliveryTimeoutMs: 7000,
      });
    });

    it('takes every setting, durations in any form', () => {
      const c = ok({
        ...base,
        RELAY_MODE: 'SPOOL',
        SPOOL_PATH: '/data/spool',
        SPOOL_MAX_BYTES: '5000000',
        SPOOL_MAX_AGE: '2h30m',
        SPOOL_RETRY_INITIAL: '250ms',
        SPOOL_RETRY_MAX: '90',
        SPOOL_CONCURRENCY: '4',
        SPOOL_DEDUP_HEADER: 'X-Request-Id',
        SPOOL_DEDUP_WINDOW: '10m',
      });
      expect(c.spool).toEqual(expect.objectContaining({
        path: '/data/spool', maxBytes: 5_000_000, maxAgeMs: 9_000_000, retryInitialMs: 250, retryMaxMs: 90_000, concurrency: 4, dedupHeader: 'X-Request-Id', dedupWindowMs: 600_000,
      }));
    });

    it('switches duplicate detection off with none, or an empty value in the file', () => {
      expect(ok({ ...base, RELAY_MODE: 'spool', SPOOL_DEDUP_HEADER: 'None' }).spool!.dedupHeader).toBeNull();
      expect(ok({ SIDECAR_CONFIG: '/c.yaml' }, 'DOWNSTREAM_SERVICE_URL: http://a:1\nRELAY_MODE: spool\nSPOOL_DEDUP_HEADER: ""\n').spool!.dedupHeader).toBeNull();
    });

    it('works with dispatch rules alone', () => {
      const c = ok({ SIDECAR_CONFIG: '/c.yaml' }, 'RELAY_MODE: spool\ndispatch:\n  header: X-Env\n  default: http://a:1\n');
      expect(c.spool).not.toBeNull();
    });

    it('lists every bad spool setting at once', () => {
      const list = problems({
        ...base,
        RELAY_MODE: 'spool',
        SPOOL_MAX_BYTES: '1GB',
        SPOOL_MAX_AGE: '0s',
        SPOOL_RETRY_INITIAL: 'soon',
        SPOOL_CONCURRENCY: '0',
        SPOOL_DEDUP_HEADER: 'X Bad',
        SPOOL_DEDUP_WINDOW: '-1h',
      });
      expect(list).toEqual([
        'SPOOL_MAX_BYTES="1GB": expected a whole number',
        'SPOOL_MAX_AGE="0s": expected a duration such as 30s, 1m or 500ms',
        'SPOOL_RETRY_INITIAL="soon": expected a duration such as 30s, 1m or 500ms',
        'SPOOL_CONCURRENCY="0": expected a whole number above 0',
        'SPOOL_DEDUP_HEADER="X Bad": expected a header name, or none',
        'SPOOL_DEDUP_WINDOW="-1h": expected a duration such as 30s, 1m or 500ms',
      ]);
    });

    it('refuses a first retry delay above the longest, listed with any other problem', () => {
      expect(problems({ ...base, RELAY_MODE: 'spool', SPOOL_RETRY_INITIAL: '10m', SPOOL_RETRY_MAX: '1m', RELAY_PORT: 'x' }))
        .toEqual(['RELAY_PORT="x": expected a TCP port number', 'SPOOL_RETRY_INITIAL="10m": expected at most SPOOL_RETRY_MAX (60 s)']);
    });

    it('refuses a body memory budget smaller than one body, and defaults it to at least one body', () => {
      expect(problems({ ...base, RELAY_MAX_BODY_BYTES: '2000000', RELAY_MAX_BUFFERED_BYTES: '1000000' }))
        .toEqual(['RELAY_MAX_BUFFERED_BYTES="1000000": expected at least RELAY_MAX_BODY_BYTES (2000000): one body of the largest size must fit']);
      expect(ok({ ...base, RELAY_MAX_BODY_BYTES: '1000000', RELAY_MAX_BUFFERED_BYTES: '5000000' }).relay!.maxBufferedBytes).toBe(5_000_000);
      expect(ok({ ...base, RELAY_MAX_BODY_BYTES: '900000000' }).relay!.maxBufferedBytes).toBe(900_000_000);
    });

    it('refuses spool mode with nowhere to deliver to', () => {
      expect(problems({ SMEE_CHANNEL_URL: 'http://smee/c', RELAY_MODE: 'spool' })[0]).toContain('RELAY_MODE="spool": the spool needs somewhere to deliver to');
    });
  });

  describe('YAML file at SIDECAR_CONFIG', () => {
    it('reads settings by their variable names; the environment wins', () => {
      const c = ok({ SIDECAR_CONFIG: '/c.yaml', RELAY_PORT: '8081' }, 'DOWNSTREAM_SERVICE_URL: http://a:1\nRELAY_PORT: 9999\nENABLE_PPROF: true\n');
      expect(c.relay!.downstreamUrl!.host).toBe('a:1');
      expect(c.server.relayPort).toBe(8081);
      expect(c.debug.enabled).toBe(true);
    });

    it('reports unknown keys, bad YAML and an unreadable file with the file named', () => {
      expect(problems({ ...base, SIDECAR_CONFIG: '/c.yaml' }, 'RELAY_PROT: 1\n')).toEqual(['/c.yaml: RELAY_PROT: unknown setting']);
      expect(problems({ ...base, SIDECAR_CONFIG: '/c.yaml' }, 'a: [\n')[0]).toMatch(/^SIDECAR_CONFIG=\/c.yaml: cannot read it as YAML/);
      expect(problems({ ...base, SIDECAR_CONFIG: '/missing.yaml' })[0]).toBe('SIDECAR_CONFIG=/missing.yaml: cannot read it (ENOENT: no such file)');
      expect(problems({ ...base, SIDECAR_CONFIG: '/c.yaml' }, '- a\n- b\n')[0]).toContain('expected a mapping');
    });

    it('joins file and environment problems in one list', () => {
      const list = problems({ SIDECAR_CONFIG: '/c.yaml', RELAY_PORT: 'x' }, 'DOWNSTREAM_SERVICE_URL: nope\nFOO: 1\n');
      expect(list).toHaveLength(3);
    });
  });

  describe('connections (MONITOR_PORT)', () => {
    it('is off unless MONITOR_PORT is set, and switches the sidecar on alone', () => {
      expect(ok(base).connections).toBeNull();
      const c = ok({ MONITOR_PORT: '8080' });
      expect(c.relay).toBeNull();
      expect(c.healthCheck).toBeNull();
      expect(c.connections).toEqual({
        ports: [8080],
        refreshMs: 10000,
        idleSettleSeconds: 5,
        stateFilePath: '/shared/connections.txt',
        procNetPath: '/proc/net',
        scriptDir: '/shared',
      });
    });

    it('names MONITOR_PORT among the switches when nothing is configured', () => {
      expect(problems({})[0]).toContain('connections: set MONITOR_PORT');
    });

    it('takes a comma list of ports, spaces allowed, duplicates collapsed', () => {
      expect(ok({ MONITOR_PORT: ' 8080, 9090 ,8080,1' }).connections!.ports).toEqual([8080, 9090, 1]);
    });

    it('takes its other settings, fractional refresh rates included', () => {
      const c = ok({
        MONITOR_PORT: '3000',
        REFRESH_RATE_SECONDS: '0.2',
        IDLE_SETTLE_SECONDS: '0',
        CONNECTIONS_FILE_PATH: '/run/conn.txt',
        PROC_NET_PATH: '/host/proc/1/net',
        SHARED_VOLUME_PATH: '/vol',
      });
      expect(c.connections).toEqual({
        ports: [3000],
        refreshMs: 200,
        idleSettleSeconds: 0,
        stateFilePath: '/run/conn.txt',
        procNetPath: '/host/proc/1/net',
        scriptDir: '/vol',
      });
      expect(ok({ MONITOR_PORT: '3000', SHARED_VOLUME_PATH: '/vol' }).connections!.stateFilePath).toBe('/vol/connections.txt');
    });

    it.each([
      ['MONITOR_PORT', '0', 'expected a TCP port or a comma-separated list of ports (1 to 65535)'],
      ['MONITOR_PORT', '8080,', 'expected a TCP port or a comma-separated list of ports (1 to 65535)'],
      ['MONITOR_PORT', '8080;9090', 'expected a TCP port or a comma-separated list of ports (1 to 65535)'],
      ['MONITOR_PORT', '65536', 'expected a TCP port or a comma-separated list of ports (1 to 65535)'],
      ['MONITOR_PORT', 'http', 'expected a TCP port or a comma-separated list of ports (1 to 65535)'],
      ['REFRESH_RATE_SECONDS', '0', 'expected from 0.1 to 3600 seconds'],
      ['REFRESH_RATE_SECONDS', '0.05', 'expected from 0.1 to 3600 seconds'],
      ['REFRESH_RATE_SECONDS', '3601', 'expected from 0.1 to 3600 seconds'],
      ['REFRESH_RATE_SECONDS', '10s', 'expected a number of seconds'],
      ['IDLE_SETTLE_SECONDS', '2.5', 'expected whole seconds'],
      ['IDLE_SETTLE_SECONDS', '-1', 'expected whole seconds'],
      ['IDLE_SETTLE_SECONDS', '3601', 'expected whole seconds from 0 to 3600'],
    ])('refuses %s=%s: %s', (name, value, message) => {
      expect(problems({ MONITOR_PORT: '8080', [name]: value })).toEqual([`${name}=${JSON.stringify(value)}: ${message}`]);
    });

    it('reads MONITOR_PORT from the YAML file as a number or a comma list', () => {
      expect(ok({ SIDECAR_CONFIG: '/c.yaml' }, 'MONITOR_PORT: 8080\nREFRESH_RATE_SECONDS: 1\n').connections).toMatchObject({ ports: [8080], refreshMs: 1000 });
      expect(ok({ SIDECAR_CONFIG: '/c.yaml' }, 'MONITOR_PORT: "8080,8443"\n').connections!.ports).toEqual([8080, 8443]);
    });
  });

  it('formats the problems as one message', () => {
    expect(formatProblems(['a', 'b'])).toBe('pod-sidecar: invalid configuration (2 problems):\n  - a\n  - b');
    expect(EXIT_CONFIG).toBe(78);
  });
});

describe('parseDuration', () => {
  it.each([
    ['30s', 30000],
    ['1m30s', 90000],
    ['500ms', 500],
    ['2h', 7200000],
    ['15', 15000],
    ['1.5s', 1500],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 's', '30x', '1m 30s', '-5s', '30s5'])('refuses %j', (text) => expect(parseDuration(text)).toBeNull());
});

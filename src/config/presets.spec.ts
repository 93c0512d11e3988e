import { join } from 'node:path';
import { loadConfig, LoadOptions } from './load-config';
import { wantsHelp } from './presets';

const DISPATCHER_FILE = join(__dirname, '..', '..', 'config', 'dispatcher-compat.yaml');

function ok(env: Record<string, string>, options: LoadOptions = {}) {
  const r = loadConfig(env, undefined, options);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

function problems(env: Record<string, string>, options: LoadOptions = {}): string[] {
  const r = loadConfig(env, undefined, options);
  if (r.ok) throw new Error('expected a configuration error');
  return r.problems;
}

describe('drop-in presets', () => {
  describe('signal-sidecar', () => {
    it('reads HTTP_PORT and TCP_PORT as the management and agent ports, with the Jitsi checks, and opens no relay', () => {
      const c = ok({ HTTP_PORT: '6100', TCP_PORT: '6160', JICOFO_ORIG: 'http://jicofo:8888' });
      expect(c.compat).toMatchObject({ preset: 'signal-sidecar', chosenBy: 'HTTP_PORT, TCP_PORT', healthRoute: true, metricsServed: true });
      expect(c.server.managementPort).toBe(6100);
      expect(c.agent).toMatchObject({ port: 6160, preset: 'jitsi', census: null });
      expect(c.relay).toBeNull();
    });

    it('a configuration of only signal-sidecar\'s names gets its ports 6000 and 6060', () => {
      const c = ok({ JICOFO_ORIG: 'http://jicofo:8888', PROSODY_ORIG: 'http://prosody:5280', STATUS_PATH: '/etc/jitsi/shard-status', LOG_LEVEL: 'debug' });
      expect(c.compat.preset).toBe('signal-sidecar');
      expect(c.server.managementPort).toBe(6000);
      expect(c.agent?.port).toBe(6060);
    });

    it('SIDECAR_PRESET=signal-sidecar alone runs the Jitsi checks on signal-sidecar\'s defaults', () => {
      const c = ok({ SIDECAR_PRESET: 'signal-sidecar' });
      expect(c.agent?.upstreams.map((u) => u.url.href)).toEqual(['http://localhost:8888/about/health', 'http://localhost:8888/stats', 'http://localhost:5280/http-bind']);
      expect(c.agent?.loadSource?.max).toBe(5000);
      expect(c.server.managementPort).toBe(6000);
    });

    it('signal-sidecar\'s status file default, /etc/jitsi/shard-status; a set STATUS_PATH or one in the file wins', () => {
      expect(ok({ JICOFO_ORIG: 'http://jicofo:8888' }).agent?.statusPath).toBe('/etc/jitsi/shard-status');
      expect(ok({ JICOFO_ORIG: 'http://jicofo:8888', STATUS_PATH: '/run/status' }).agent?.statusPath).toBe('/run/status');
      const files: Record<string, string> = { '/c.yaml': 'STATUS_PATH: /from/file\nMANAGEMENT_PORT: 6100\n', '/a.yaml': 'agent:\n  statusPath: /from/section\n' };
      const fromFile = loadConfig({ SIDECAR_PRESET: 'signal-sidecar', SIDECAR_CONFIG: '/c.yaml' }, (p) => files[p]);
      if (!fromFile.ok) throw new Error(fromFile.problems.join('\n'));
      expect(fromFile.config.agent?.statusPath).toBe('/from/file');
      expect(fromFile.config.server.managementPort).toBe(6100);
      const fromSection = loadConfig({ SIDECAR_PRESET: 'signal-sidecar', SIDECAR_CONFIG: '/a.yaml' }, (p) => files[p]);
      if (!fromSection.ok) throw new Error(fromSection.problems.join('\n'));
      expect(fromSection.config.agent?.statusPath).toBe('/from/section');
    });

    it('this sidecar\'s own names beside the Jitsi ones keep its own ports', () => {
      const c = ok({ JICOFO_ORIG: 'http://jicofo:8888', AGENT_PORT: '6060' });
      expect(c.compat.preset).toBeNull();
      expect(c.server.managementPort).toBe(9100);
    });

    it('takes PARTIPANT_MAX (the README\'s spelling) as PARTICIPANT_MAX; the same value twice is fine, two values are not', () => {
      expect(ok({ PARTIPANT_MAX: '300', WEIGHT_PARTICIPANTS: 'true' }).agent?.loadSource).toMatchObject({ max: 300, weighted: true });
      expect(ok({ PARTIPANT_MAX: '300', PARTICIPANT_MAX: '300' }).agent?.loadSource?.max).toBe(300);
      expect(problems({ PARTIPANT_MAX: '300', PARTICIPANT_MAX: '400' })).toEqual([
        'PARTIPANT_MAX="300" and PARTICIPANT_MAX="400" differ: they are one setting (signal-sidecar\'s README spells it both ways); keep one',
      ]);
    });

    it('refuses a seed name beside this sidecar\'s name for the same port', () => {
      expect(problems({ HTTP_PORT: '6000', MANAGEMENT_PORT: '9100' })).toEqual([
        'HTTP_PORT and MANAGEMENT_PORT are both set: they are the same setting (signal-sidecar\'s name and this sidecar\'s); keep one',
      ]);
      expect(problems({ TCP_PORT: '6060', AGENT_PORT: '6061' })[0]).toMatch(/^TCP_PORT and AGENT_PORT are both set/);
    });

    it('METRICS=false stops /metrics; another word is refused', () => {
      expect(ok({ JICOFO_ORIG: 'http://j:8888', METRICS: 'false' }).compat.metricsServed).toBe(false);
      expect(problems({ JICOFO_ORIG: 'http://j:8888', METRICS: 'sometimes' })).toEqual(['METRICS="sometimes": expected true or false']);
    });

    it('CENSUS_POLL=true polls <PROSODY_ORIG>/room-census on CENSUS_HOST, and needs CENSUS_HOST', () => {
      const c = ok({ PROSODY_ORIG: 'http://prosody:5280/', CENSUS_POLL: 'true', CENSUS_HOST: 'conference.meet.example.com' });
      expect(c.agent?.census).toEqual({ url: new URL('http://prosody:5280/room-census'), host: 'conference.meet.example.com', timeoutMs: 3000 });
      expect(ok({ PROSODY_ORIG: 'http://prosody:5280', CENSUS_POLL: 'false', CENSUS_HOST: 'c.x' }).agent?.census).toBeNull();
      expect(problems({ CENSUS_POLL: 'true' })).toEqual([expect.stringMatching(/^CENSUS_POLL=true: CENSUS_HOST is required/)]);
    });

    it('ignores HTTP_PORT or TCP_PORT holding a Kubernetes service link when nothing else asks for signal-sidecar', () => {
      const c = ok({ DOWNSTREAM_SERVICE_URL: 'http://app:3000', HTTP_PORT: 'tcp://10.96.0.1:80', TCP_PORT: 'tcp://10.96.0.2:6060' });
      expect(c.compat.preset).toBeNull();
      expect(c.server.managementPort).toBe(9100);
    });
  });

  describe('spawner-sidecar', () => {
    it('reads its flags: the monitored port, the refresh rate and the serve port, and serves GET / there', () => {
      const c = ok({}, { argv: ['--monitor-port', '3000', '--refresh-rate-seconds', '2', '--serve-port=7171'] });
      expect(c.compat).toMatchObject({ preset: 'spawner-sidecar', spawnerRoot: true });
      expect(c.connections).toMatchObject({ ports: [3000], refreshMs: 2000 });
      expect(c.server.managementPort).toBe(7171);
      expect(c.relay).toBeNull();
    });

    it('its defaults: port 8080 monitored (not bound), 10 s, served on 7070', () => {
      const c = ok({ SIDECAR_PRESET: 'spawner-sidecar' });
      expect(c.connections).toMatchObject({ ports: [8080], refreshMs: 10000 });
      expect(c.server.managementPort).toBe(7070);
      expect(c.relay).toBeNull();
    });

    it('refuses an unknown flag, a stray argument, a bad value, and a flag beside its variable', () => {
      expect(problems({}, { argv: ['--monitor'] })[0]).toMatch(/^command line: Unknown option '--monitor'.*the only flags are spawner-sidecar's/);
      expect(problems({}, { argv: ['serve'] })[0]).toMatch(/^command line: .*serve/);
      expect(problems({}, { argv: ['--monitor-port', 'http'] })).toEqual(['MONITOR_PORT="http": expected a TCP port or a comma-separated list of ports (1 to 65535)']);
      expect(problems({ MONITOR_PORT: '8080' }, { argv: ['--monitor-port', '8080'] })[0]).toMatch(/^--monitor-port and MONITOR_PORT are both set/);
      expect(problems({ MANAGEMENT_PORT: '9100' }, { argv: ['--serve-port', '7070'] })[0]).toMatch(/^--serve-port and MANAGEMENT_PORT are both set/);
    });

    it('-h and --help ask for the usage', () => {
      expect(wantsHelp(['-h'])).toBe(true);
      expect(wantsHelp(['--monitor-port', '1', '--help'])).toBe(true);
      expect(wantsHelp(['--monitor-port', '1'])).toBe(false);
    });
  });

  describe('metrics pusher', () => {
    const URL_ = 'http://prometheus:9090/api/v1/write';

    it('a configuration of only its names is the pusher: /health, /ready and its series', () => {
      const c = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, PUSH_INTERVAL: '15s', LOG_LEVEL: 'info' });
      expect(c.compat).toMatchObject({ preset: 'metrics-pusher', healthRoute: true, readyRoute: true, pusherSeries: true });
      expect(c.remoteWrite).toMatchObject({ intervalMs: 15000, timeoutMs: 30000, labels: [] });
      expect(c.relay).toBeNull();
    });

    it('reads TIMEOUT as the push timeout and NAMESPACE as the namespace label', () => {
      const c = ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, TIMEOUT: '10s', NAMESPACE: 'builders' });
      expect(c.remoteWrite).toMatchObject({ timeoutMs: 10000, labels: [['namespace', 'builders']] });
      expect(ok({ PROMETHEUS_REMOTE_WRITE_URL: URL_, NAMESPACE: 'b', REMOTE_WRITE_LABELS: 'team=x' }).remoteWrite?.labels).toEqual([['team', 'x'], ['namespace', 'b']]);
    });

    it('refuses TIMEOUT beside REMOTE_WRITE_TIMEOUT, NAMESPACE beside a namespace label, and its names without a receiver', () => {
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, TIMEOUT: '10s', REMOTE_WRITE_TIMEOUT: '5s' })[0]).toMatch(/^TIMEOUT and REMOTE_WRITE_TIMEOUT are both set/);
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, NAMESPACE: 'a', REMOTE_WRITE_LABELS: 'namespace=b' })).toEqual(['NAMESPACE and REMOTE_WRITE_LABELS both set the namespace label; keep one']);
      expect(problems({ TIMEOUT: '10s' })).toEqual(['PROMETHEUS_REMOTE_WRITE_URL=(unset): required by the metrics pusher (the receiver to push to)']);
    });

    it('TIMEOUT is checked as a duration', () => {
      expect(problems({ PROMETHEUS_REMOTE_WRITE_URL: URL_, TIMEOUT: 'soon' })).toEqual(['REMOTE_WRITE_TIMEOUT="soon": expected a duration such as 30s, 1m or 500ms']);
    });
  });

  describe('sidecar_http_dispatcher', () => {
    it('its config.yaml alone: relay on port 5000, no management port', () => {
      const c = ok({ SIDECAR_CONFIG: DISPATCHER_FILE });
      expect(c.compat).toMatchObject({ preset: 'http-dispatcher', managementPortOff: true });
      expect(c.server.relayPort).toBe(5000);
      expect(c.server.managementPort).toBeNull();
      expect(c.dispatch?.header).toBe('environment');
    });

    it('reads config.yaml from the working directory when SIDECAR_CONFIG is unset', () => {
      const c = ok({}, { fallbackFile: DISPATCHER_FILE });
      expect(c.compat.preset).toBe('http-dispatcher');
      expect(c.dispatch?.defaultDestination?.href).toBe('http://example.org/');
      // No such file: nothing is read, and with nothing else set that is the usual error.
      expect(problems({}, { fallbackFile: join(__dirname, 'no-such-config.yaml') })[0]).toMatch(/^no feature is configured/);
    });

    it('with SIDECAR_PRESET, MANAGEMENT_PORT opens the management port; the sidecar\'s own settings beside the file keep its own ports', () => {
      expect(ok({ SIDECAR_PRESET: 'http-dispatcher', SIDECAR_CONFIG: DISPATCHER_FILE, MANAGEMENT_PORT: '9200' }).server).toMatchObject({ relayPort: 5000, managementPort: 9200 });
      const own = ok({ SIDECAR_CONFIG: DISPATCHER_FILE, DOWNSTREAM_SERVICE_URL: 'http://app:3000' });
      expect(own.compat.preset).toBeNull();
      expect(own.server).toMatchObject({ relayPort: 8080, managementPort: 9100 });
    });
  });

  describe('choosing', () => {
    it('smee-sidecar\'s settings are this sidecar\'s own: no preset, relay 8080, management 9100', () => {
      const c = ok({ DOWNSTREAM_SERVICE_URL: 'http://app:8080', SMEE_CHANNEL_URL: 'https://smee.io/abc' });
      expect(c.compat.preset).toBeNull();
      expect(c.server).toMatchObject({ relayPort: 8080, managementPort: 9100 });
      expect(ok({ SIDECAR_PRESET: 'smee-sidecar', DOWNSTREAM_SERVICE_URL: 'http://app:8080' }).compat.preset).toBe('smee-sidecar');
    });

    it('refuses names of two sidecars at once, naming both', () => {
      expect(problems({ HTTP_PORT: '6000', TIMEOUT: '30s', PROMETHEUS_REMOTE_WRITE_URL: 'http://p:9090/api/v1/write' })).toEqual([
        'settings of two sidecars at once: signal-sidecar (HTTP_PORT) and metrics-pusher (TIMEOUT); keep one sidecar\'s names (or set SIDECAR_PRESET and remove the other\'s)',
      ]);
      expect(problems({ TCP_PORT: '6060' }, { argv: ['--serve-port', '7070'] })[0]).toMatch(/signal-sidecar \(TCP_PORT\) and spawner-sidecar \(--serve-port\)/);
    });

    it('refuses a name of another sidecar than SIDECAR_PRESET says, and an unknown preset', () => {
      expect(problems({ SIDECAR_PRESET: 'metrics-pusher', PROMETHEUS_REMOTE_WRITE_URL: 'http://p:9090/api/v1/write', HTTP_PORT: '6000' })).toEqual([
        'HTTP_PORT: signal-sidecar\'s setting, but SIDECAR_PRESET=metrics-pusher; remove it or change SIDECAR_PRESET',
      ]);
      expect(problems({ SIDECAR_PRESET: 'jitsi' })).toEqual(['SIDECAR_PRESET="jitsi": expected one of smee-sidecar, signal-sidecar, spawner-sidecar, metrics-pusher, http-dispatcher']);
    });

    it('SIDECAR_PRESET decides for names two sidecars share: LOG_LEVEL and PUSH_INTERVAL stay as they are', () => {
      const c = ok({ SIDECAR_PRESET: 'signal-sidecar', LOG_LEVEL: 'warn', PROMETHEUS_REMOTE_WRITE_URL: 'http://p:9090/api/v1/write' });
      expect(c.compat.preset).toBe('signal-sidecar');
      expect(c.log.level).toBe('warn');
      expect(c.remoteWrite).not.toBeNull();
      expect(c.compat.pusherSeries).toBe(false);
    });
  });
});

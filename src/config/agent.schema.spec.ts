import { join } from 'node:path';
import { loadConfig } from './load-config';
import type { AgentConfig } from './sidecar-config';

function load(env: Record<string, string>, file?: string) {
  return loadConfig(env, () => {
    if (file === undefined) throw new Error('ENOENT: no such file');
    return file;
  });
}

function agentOf(env: Record<string, string>, file?: string): AgentConfig {
  const r = load(env, file);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  if (!r.config.agent) throw new Error('the agent is off');
  return r.config.agent;
}

function problems(env: Record<string, string>, file?: string): string[] {
  const r = load(env, file);
  if (r.ok) throw new Error('expected the configuration to be refused');
  return r.problems;
}

const FILE = { SIDECAR_CONFIG: '/etc/sidecar.yaml' };

describe('agent settings', () => {
  it('is off unless something switches it on', () => {
    const r = load({ DOWNSTREAM_SERVICE_URL: 'http://app:3000', POLLING_INTERVAL: '2', STATUS_PATH: '/x' });
    expect(r.ok && r.config.agent).toBeNull();
  });

  it.each([
    ['AGENT_PORT', { AGENT_PORT: '5000' }],
    ['UPSTREAM_HEALTH_URLS', { UPSTREAM_HEALTH_URLS: 'http://a/health' }],
    ['JICOFO_ORIG', { JICOFO_ORIG: 'http://localhost:8888' }],
    ['PROSODY_ORIG', { PROSODY_ORIG: 'http://localhost:5280' }],
    ['PARTICIPANT_MAX', { PARTICIPANT_MAX: '100' }],
    ['WEIGHT_PARTICIPANTS', { WEIGHT_PARTICIPANTS: 'true' }],
  ])('%s alone switches it on, with no relay and no health check', (_name, env) => {
    const r = load(env);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.agent).not.toBeNull();
    expect(r.config.relay).toBeNull();
    expect(r.config.healthCheck).toBeNull();
  });

  it('an agent section alone switches it on, even an empty one', () => {
    expect(agentOf(FILE, 'agent:\n').upstreams).toEqual([]);
  });

  it('applies signal-sidecar\'s defaults and a status file on the shared volume', () => {
    const a = agentOf({ AGENT_PORT: '5000', SHARED_VOLUME_PATH: '/vol' });
    expect(a).toMatchObject({
      port: 5000, maxconn: null, pollIntervalMs: 5000, dampeningMs: 30000, graceMs: 120000, graceRaisedFromMs: null,
      statusPath: '/vol/shard-status', statusInitial: null, upstreams: [], loadSource: null, preset: null, connectionTimeoutMs: 5000,
    });
  });

  it('takes fractional intervals, 0 to switch dampening and grace off, STATUS_INITIAL in any case', () => {
    const a = agentOf({ AGENT_PORT: '5000', POLLING_INTERVAL: '0.2', HEALTH_DAMPENING_INTERVAL: '0', DRAIN_GRACE_INTERVAL: '0', STATUS_INITIAL: 'Ready', AGENT_MAXCONN: '30' });
    expect(a).toMatchObject({ pollIntervalMs: 200, dampeningMs: 0, graceMs: 0, statusInitial: 'ready', maxconn: 30 });
  });

  it('raises a grace shorter than the dampening to the dampening plus one second, and says from what', () => {
    const a = agentOf({ AGENT_PORT: '5000', HEALTH_DAMPENING_INTERVAL: '30', DRAIN_GRACE_INTERVAL: '10' });
    expect(a.graceMs).toBe(31000);
    expect(a.graceRaisedFromMs).toBe(10000);
    expect(agentOf({ AGENT_PORT: '5000', HEALTH_DAMPENING_INTERVAL: '30', DRAIN_GRACE_INTERVAL: '0' }).graceMs).toBe(0);
  });

  it('refuses bad values, each with name and value', () => {
    expect(problems({ AGENT_PORT: '99999', POLLING_INTERVAL: '0', HEALTH_DAMPENING_INTERVAL: '-1', STATUS_INITIAL: 'up', AGENT_MAXCONN: '0', WEIGHT_PARTICIPANTS: 'sure' })).toEqual([
      'AGENT_PORT="99999": expected a port from 1 to 65535',
      'AGENT_MAXCONN="0": expected a whole number above 0',
      'STATUS_INITIAL="up": expected ready, drain or maint',
      'POLLING_INTERVAL="0": expected more than 0 seconds',
      'HEALTH_DAMPENING_INTERVAL="-1": expected a number of seconds',
      'WEIGHT_PARTICIPANTS="sure": expected true or false',
    ]);
  });

  it.each(['AGENT_PORT', 'RELAY_PORT', 'MANAGEMENT_PORT', 'MONITOR_PORT'])('explains a Kubernetes service link in %s', (name) => {
    const [p] = problems({ AGENT_PORT: '5000', [name]: 'tcp://10.0.0.1:5000' });
    expect(p).toBe(`${name}="tcp://10.0.0.1:5000": expected a TCP port number, not a URL: a tcp://… value is what Kubernetes injects for a Service of the same name (set enableServiceLinks: false in the pod spec)`);
  });

  describe('UPSTREAM_HEALTH_URLS', () => {
    it('is a comma list; each check is named by host and path, never by query or credentials', () => {
      const a = agentOf({ UPSTREAM_HEALTH_URLS: 'http://app:8080/healthz, https://user:pw@db.local/ready?token=s3cret ,http://app:8080/,' });
      expect(a.upstreams.map((u) => u.name)).toEqual(['app:8080/healthz', 'db.local/ready', 'app:8080']);
      expect(a.upstreams[0]).toMatchObject({ expectStatus: [[200, 299]], timeoutMs: 3000, retries: 0, softDown: { statuses: [503], onTimeout: false } });
    });

    it('gives the same URL twice its own series', () => {
      expect(agentOf({ UPSTREAM_HEALTH_URLS: 'http://a/h,http://a/h' }).upstreams.map((u) => u.name)).toEqual(['a/h', 'a/h#2']);
    });

    it('takes UPSTREAM_TIMEOUT_SECONDS', () => {
      expect(agentOf({ UPSTREAM_HEALTH_URLS: 'http://a/h', UPSTREAM_TIMEOUT_SECONDS: '0.5' }).upstreams[0].timeoutMs).toBe(500);
    });

    it('names each item that is not a URL', () => {
      expect(problems({ UPSTREAM_HEALTH_URLS: 'http://ok/h,ftp://x,nope' })).toEqual([
        'UPSTREAM_HEALTH_URLS="http://ok/h,ftp://x,nope": "ftp://x" is not an absolute http:// or https:// URL',
        'UPSTREAM_HEALTH_URLS="http://ok/h,ftp://x,nope": "nope" is not an absolute http:// or https:// URL',
      ]);
      expect(problems({ UPSTREAM_HEALTH_URLS: ' , ' })[0]).toMatch(/expected a comma-separated list/);
    });
  });

  describe('the Jitsi preset (signal-sidecar\'s settings)', () => {
    it('checks jicofo /about/health, /stats and prosody /http-bind, and reads participants', () => {
      const a = agentOf({ JICOFO_ORIG: 'http://jicofo:8888/', PROSODY_ORIG: 'http://prosody:5280', PARTICIPANT_MAX: '300', WEIGHT_PARTICIPANTS: 'true' });
      expect(a.preset).toBe('jitsi');
      expect(a.upstreams.map((u) => [u.name, u.url.href, u.softDown])).toEqual([
        ['jicofo', 'http://jicofo:8888/about/health', { statuses: [503], onTimeout: false }],
        ['jicofo-stats', 'http://jicofo:8888/stats', { statuses: [], onTimeout: false }],
        ['prosody', 'http://prosody:5280/http-bind', { statuses: [], onTimeout: true }],
      ]);
      expect(a.upstreams.every((u) => u.retries === 2 && u.expectStatus[0][0] === 200 && u.expectStatus[0][1] === 200)).toBe(true);
      expect(a.loadSource).toMatchObject({ field: 'participants', path: ['participants'], max: 300, weighted: true, extraFields: { conferences: ['conferences'] } });
      expect(a.loadSource!.url.href).toBe('http://jicofo:8888/stats');
      // Only jicofo's health answer is read, and only its start (for /signal/report).
      expect(a.upstreams.map((u) => u.keepBodyBytes)).toEqual([256, undefined, undefined]);
    });

    it('uses signal-sidecar\'s defaults for what is not set', () => {
      const a = agentOf({ WEIGHT_PARTICIPANTS: 'false' });
      expect(a.upstreams.map((u) => u.url.href)).toEqual(['http://localhost:8888/about/health', 'http://localhost:8888/stats', 'http://localhost:5280/http-bind']);
      expect(a.loadSource).toMatchObject({ max: 5000, weighted: false });
    });

    it('adds UPSTREAM_HEALTH_URLS to its checks', () => {
      expect(agentOf({ JICOFO_ORIG: 'http://j:1', UPSTREAM_HEALTH_URLS: 'http://jvb:8080/about/health' }).upstreams.map((u) => u.name))
        .toEqual(['jicofo', 'jicofo-stats', 'prosody', 'jvb:8080/about/health']);
    });
  });

  describe('the agent section of SIDECAR_CONFIG', () => {
    const yaml = `
agent:
  statusPath: /run/shard-status
  upstreams:
    - name: api
      url: http://localhost:8080/healthz
      expectStatus: [200, 204, "3xx"]
      timeout: 500ms
      retries: 2
      softDown: { statuses: [503, 429], onTimeout: true }
    - url: http://localhost:9000/ready
      timeout: 1.5
      softDown: false
    - name: worker
      url: http://localhost:7000/
      expectStatus: 200
  loadSource:
    url: http://localhost:8080/stats
    field: sessions.active
    max: 250
`;

    it('reads upstreams, load source and status path', () => {
      const a = agentOf(FILE, yaml);
      expect(a.statusPath).toBe('/run/shard-status');
      expect(a.upstreams).toEqual([
        { name: 'api', url: new URL('http://localhost:8080/healthz'), expectStatus: [[200, 200], [204, 204], [300, 399]], timeoutMs: 500, retries: 2, softDown: { statuses: [503, 429], onTimeout: true } },
        { name: 'localhost:9000/ready', url: new URL('http://localhost:9000/ready'), expectStatus: [[200, 299]], timeoutMs: 1500, retries: 0, softDown: { statuses: [], onTimeout: false } },
        { name: 'worker', url: new URL('http://localhost:7000/'), expectStatus: [[200, 200]], timeoutMs: 3000, retries: 0, softDown: { statuses: [503], onTimeout: false } },
      ]);
      expect(a.loadSource).toEqual({ url: new URL('http://localhost:8080/stats'), field: 'sessions.active', path: ['sessions', 'active'], max: 250, weighted: true, timeoutMs: 3000 });
    });

    it('STATUS_PATH overrides the section\'s statusPath', () => {
      expect(agentOf({ ...FILE, STATUS_PATH: '/elsewhere' }, yaml).statusPath).toBe('/elsewhere');
    });

    it('joins the section\'s upstreams to UPSTREAM_HEALTH_URLS', () => {
      expect(agentOf({ ...FILE, UPSTREAM_HEALTH_URLS: 'http://x/h' }, yaml).upstreams.map((u) => u.name)).toEqual(['x/h', 'api', 'localhost:9000/ready', 'worker']);
    });

    it('lists every problem with its path in the file', () => {
      const bad = `
agent:
  statusPath: ""
  colour: blue
  upstreams:
    - name: has space
      url: ftp://x
      expectStatus: [99, "6xx", 200]
      timeout: -1
      retries: 1.5
      softDown: { statuses: [700], onTimeout: maybe, other: 1 }
    - timeout: soon
    - just a string
  loadSource:
    url: http://x/stats
    field: "a..b"
    max: 0
`;
      expect(problems(FILE, bad)).toEqual([
        '/etc/sidecar.yaml: agent.statusPath: expected a file path',
        '/etc/sidecar.yaml: agent.upstreams[0].name: expected a name of 1 to 64 printable characters without spaces',
        '/etc/sidecar.yaml: agent.upstreams[0].url: expected an absolute http:// or https:// URL',
        '/etc/sidecar.yaml: agent.upstreams[0].expectStatus[0]: expected a status (200) or a class ("2xx")',
        '/etc/sidecar.yaml: agent.upstreams[0].expectStatus[1]: expected a status (200) or a class ("2xx")',
        '/etc/sidecar.yaml: agent.upstreams[0].timeout: expected more than 0 seconds (3, 0.5) or a duration ("500ms")',
        '/etc/sidecar.yaml: agent.upstreams[0].retries: expected a whole number from 0 to 10',
        '/etc/sidecar.yaml: agent.upstreams[0].softDown: expected {statuses?: [503], onTimeout?: true} or false',
        '/etc/sidecar.yaml: agent.upstreams[1].url: required (an absolute http:// or https:// URL)',
        '/etc/sidecar.yaml: agent.upstreams[1].timeout: expected more than 0 seconds (3, 0.5) or a duration ("500ms")',
        '/etc/sidecar.yaml: agent.upstreams[2]: expected an upstream: {name?, url, expectStatus?, timeout?, retries?, softDown?}',
        '/etc/sidecar.yaml: agent.loadSource.field: expected a field path such as participants or stats.participants',
        '/etc/sidecar.yaml: agent.loadSource.max: expected a number above 0',
        '/etc/sidecar.yaml: agent.colour: unknown field',
      ]);
    });

    it('points at a scalar expectStatus itself', () => {
      expect(problems(FILE, 'agent:\n  upstreams:\n    - { url: "http://a/", expectStatus: 2xy }\n')).toEqual([
        '/etc/sidecar.yaml: agent.upstreams[0].expectStatus: expected a status (200) or a class ("2xx")',
      ]);
      expect(problems(FILE, 'agent:\n  upstreams:\n    - { url: "http://a/", expectStatus: [] }\n')).toEqual([
        '/etc/sidecar.yaml: agent.upstreams[0].expectStatus: expected at least one status',
      ]);
    });

    it('explains softDown field problems when the shape is right', () => {
      const list = problems(FILE, 'agent:\n  upstreams:\n    - url: http://a/\n      softDown: { statuses: [700] }\n');
      expect(list.join('\n')).toMatch(/agent\.upstreams\[0\]\.softDown/);
    });

    it('refuses a section that is not a mapping', () => {
      expect(problems(FILE, 'agent: [1]\n')).toEqual(['/etc/sidecar.yaml: agent: expected a mapping: {statusPath?, upstreams?, loadSource?}']);
    });

    it('refuses check names used twice, across sources, and the reserved health-check', () => {
      const file = 'agent:\n  upstreams:\n    - { name: jicofo, url: "http://a/" }\n    - { name: api, url: "http://b/" }\n    - { name: api, url: "http://c/" }\n    - { name: health-check, url: "http://d/" }\n';
      expect(problems({ ...FILE, JICOFO_ORIG: 'http://j:1' }, file)).toEqual([
        '/etc/sidecar.yaml: agent.upstreams[0].name: the check name "jicofo" is also used by the Jitsi preset; names label metrics and must differ',
        '/etc/sidecar.yaml: agent.upstreams[2].name: the check name "api" is also used by agent.upstreams[1].name; names label metrics and must differ',
        '/etc/sidecar.yaml: agent.upstreams[3].name: "health-check" names the smee round trip among the agent\'s checks; choose another name',
      ]);
    });

    it('refuses a load source beside the Jitsi preset\'s', () => {
      expect(problems({ ...FILE, PARTICIPANT_MAX: '10' }, 'agent:\n  loadSource: { url: "http://a/s", field: n, max: 1 }\n')[0])
        .toMatch(/^\/etc\/sidecar\.yaml: agent\.loadSource: the Jitsi preset .* already reads participants/);
    });

    it('lists section problems together with environment problems', () => {
      expect(problems({ ...FILE, POLLING_INTERVAL: 'often' }, 'agent:\n  upstreams: 3\n')).toEqual([
        '/etc/sidecar.yaml: agent.upstreams: expected a list of upstreams',
        'POLLING_INTERVAL="often": expected a number of seconds',
      ]);
    });

    it('the names the file may use stay known at the top level too', () => {
      expect(agentOf(FILE, 'AGENT_PORT: 5000\nUPSTREAM_HEALTH_URLS: http://a/h\n').port).toBe(5000);
    });
  });

  describe('the example files', () => {
    const example = (name: string) => {
      const r = loadConfig({ SIDECAR_CONFIG: join(__dirname, '..', '..', 'config', name) });
      if (!r.ok) throw new Error(r.problems.join('\n'));
      return r.config.agent!;
    };

    it('config/haproxy-agent.yaml: two checks, a load source, the status file on the shared volume', () => {
      const a = example('haproxy-agent.yaml');
      expect(a).toMatchObject({ port: 6060, statusPath: '/shared/shard-status', statusInitial: 'ready', preset: null });
      expect(a.upstreams.map((u) => [u.name, u.timeoutMs, u.retries, u.softDown])).toEqual([
        ['api', 2000, 1, { statuses: [503, 429], onTimeout: true }],
        ['worker', 3000, 0, { statuses: [], onTimeout: false }],
      ]);
      expect(a.loadSource).toMatchObject({ path: ['sessions', 'active'], max: 500, weighted: true });
    });

    it('config/jitsi-signal.yaml: the Jitsi preset with signal-sidecar\'s ports', () => {
      const r = loadConfig({ SIDECAR_CONFIG: join(__dirname, '..', '..', 'config', 'jitsi-signal.yaml') });
      if (!r.ok) throw new Error(r.problems.join('\n'));
      expect(r.config.server.managementPort).toBe(6000);
      expect(r.config.agent).toMatchObject({ port: 6060, preset: 'jitsi', statusPath: '/etc/jitsi/shard-status', loadSource: { max: 5000, weighted: true } });
    });
  });
});

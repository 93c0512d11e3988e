import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { parse as parseYaml, stringify } from 'yaml';
import { LoopbackChannel } from './support/loopback-channel';
import { killLeftover, spawnSidecar, SidecarProcess } from './support/process';
import { RedisServer } from './support/redis-server';
import { RecordingServer } from './support/recording-server';
import { freePort } from './support/sidecar';
import { teardown } from './support/teardown';

/**
 * k8s/monitoring/: the alert rules (plain file and PrometheusRule) and the Grafana
 * dashboard. promtool (Debian's prometheus package) checks every expression and runs the
 * rules' unit tests; the metric names they use are checked against what a sidecar with
 * every feature on exposes at /metrics.
 */

const ROOT = join(__dirname, '..');
const DIR = join(ROOT, 'k8s', 'monitoring');
const PROMTOOL = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';
const RULES = join(DIR, 'pod-sidecar.rules.yaml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}
interface Target {
  refId: string;
  expr: string;
  legendFormat: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}

function promtool(...args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${PROMTOOL} (scripts/install-test-peers.sh installs it): ${r.error.message}`);
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/** `promtool check rules` on these expressions, as recording rules of a temporary file. */
function checkExpressions(exprs: string[]): { ok: boolean; output: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'dashboard-exprs-')), 'exprs.rules.yaml');
  writeFileSync(
    file,
    stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }),
  );
  return promtool('check', 'rules', file);
}

/** Grafana's variables, replaced by values that make plain PromQL of the expression. */
function withoutVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(namespace|pod)\}?/g, '.*');
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects: identifiers outside strings, label
 * matchers, ranges and grouping clauses, that are not followed by "(" (a function or an
 * aggregation) and are not keywords or parts of numbers and durations.
 */
function metricNames(expr: string): string[] {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  e = e.replace(/\{[^}]*\}/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of e.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = e[m.index - 1] ?? ' ';
    if (/[0-9.]/.test(before)) continue; // 1e3, 5m
    if (
      e
        .slice(m.index + m[0].length)
        .trimStart()
        .startsWith('(')
    )
      continue;
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

const rulesFile = () => parseYaml(readFileSync(RULES, 'utf8')) as { groups: Group[] };
const alertRules = () => rulesFile().groups.flatMap((g) => g.rules);
const dashboard = () =>
  JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
    uid: string;
    title: string;
    templating: { list: Array<{ name: string; type: string; query: string | { query: string }; datasource?: { uid: string } }> };
    panels: Panel[];
  };
const dashboardTargets = () => dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
/** The PromQL of the variables' label_values(<selector>, label) queries. */
const variableSelectors = () =>
  dashboard()
    .templating.list.filter((v) => v.type === 'query')
    .map((v) => {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.+),\s*\w+\)$/.exec(q);
      if (!m) throw new Error(`variable ${v.name}: expected label_values(<selector>, <label>), got ${q}`);
      return m[1];
    });

describe('metricNames (the extractor the name check relies on)', () => {
  it('finds the selected metrics and nothing else', () => {
    expect(
      metricNames(
        'sum by (le, pod) (rate(a_seconds_bucket{pod=~"x|y", job="rate(b)"}[5m] offset 1h)) / on (pod) group_left (x) c_total > bool 1e3 and d',
      ),
    ).toEqual(['a_seconds_bucket', 'c_total', 'd']);
    expect(metricNames('histogram_quantile(0.9, sum without (status_class) (rate(x_bucket[$__rate_interval])))')).toEqual(['x_bucket']);
    expect(metricNames('time() - last_success_timestamp_seconds{pod="a"}')).toEqual(['last_success_timestamp_seconds']);
  });
});

describe('alert rules (k8s/monitoring)', () => {
  it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', RULES);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.ok).toBe(true);
  });

  it('pass their unit tests on made-up series (promtool test rules)', () => {
    const r = promtool('test', 'rules', join(ROOT, 'test', 'monitoring', 'pod-sidecar.rules.test.yaml'));
    expect(r.output).toContain('SUCCESS');
    expect(r.ok).toBe(true);
  });

  it('cover each case the on-call person needs, with a severity, a summary and a description', () => {
    expect(alertRules().map((r) => r.alert)).toEqual([
      'PodSidecarHealthCheckFailing',
      'PodSidecarRelayErrors',
      'PodSidecarSpoolFilling',
      'PodSidecarSpoolBacklog',
      'PodSidecarDeadLetters',
      'PodSidecarRemoteWriteFailing',
      'PodSidecarRemoteWriteDropping',
      'PodSidecarAgentStuckInDrain',
      'PodSidecarAgentDown',
    ]);
    for (const r of alertRules()) {
      expect([r.alert, ['critical', 'warning'].includes(r.labels?.severity ?? '')]).toEqual([r.alert, true]);
      expect(Object.keys(r.annotations ?? {}).sort()).toEqual(['description', 'summary']);
    }
  });

  it('are the same groups in the PrometheusRule, which is a well-formed one', () => {
    const docs = readFileSync(join(DIR, 'prometheusrule.yaml'), 'utf8');
    const object = parseYaml(docs) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string; labels: Record<string, string> };
      spec: { groups: Group[] };
    };
    expect(object.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(object.kind).toBe('PrometheusRule');
    expect(object.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(Object.keys(object)).toEqual(['apiVersion', 'kind', 'metadata', 'spec']);
    expect(Object.keys(object.spec)).toEqual(['groups']);
    // The CRD's schema: a group has name and rules; a rule alert or record, expr, for, labels, annotations.
    for (const g of object.spec.groups) {
      expect(Object.keys(g).sort()).toEqual(['name', 'rules']);
      for (const r of g.rules) {
        for (const key of Object.keys(r))
          expect(['alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations']).toContain(key);
        expect(typeof r.expr).toBe('string');
        if (r.for !== undefined)
          expect(r.for).toMatch(/^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/);
      }
    }
    expect(object.spec.groups).toEqual(rulesFile().groups);
  });

  it('and the dashboard are what scripts/monitoring.mjs generates from their sources', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'monitoring.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('Grafana dashboard (k8s/monitoring/grafana-dashboard.json)', () => {
  it('imports anywhere: a data source variable that every panel and query uses, pod and namespace variables', () => {
    const d = dashboard();
    expect(d.uid).toBe('pod-sidecar');
    expect(d.templating.list.map((v) => [v.name, v.type])).toEqual([
      ['datasource', 'datasource'],
      ['namespace', 'query'],
      ['pod', 'query'],
    ]);
    expect(d.templating.list[0].query).toBe('prometheus');
    for (const p of d.panels.filter((x) => x.type !== 'row')) {
      expect([p.title, p.datasource?.uid]).toEqual([p.title, '${datasource}']);
      expect(p.targets!.length).toBeGreaterThan(0);
      for (const t of p.targets!) expect([p.title, t.datasource.uid]).toEqual([p.title, '${datasource}']);
    }
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
  });

  it('has one row per feature, panels inside the 24-column grid without overlapping', () => {
    const d = dashboard();
    expect(d.panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Smee round trip (health check)',
      'Relay',
      'Webhook authenticity',
      'Replicas (coordination through Redis)',
      'Spool',
      'Agent (HAProxy agent-check)',
      'Connection activity',
      'Remote write',
      'Process',
    ]);
    const cells = new Map<string, string>();
    const problems: string[] = [];
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      if (x < 0 || w < 1 || x + w > 24) problems.push(`${p.title} is outside the grid`);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          const other = cells.get(`${i},${j}`);
          if (other !== undefined) problems.push(`${p.title} overlaps ${other} at ${i},${j}`);
          cells.set(`${i},${j}`, p.title);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('has queries that all parse (promtool check rules on them), and a broken one would not', () => {
    const exprs = [...dashboardTargets().map((t) => t.expr), ...variableSelectors()].map(withoutVariables);
    expect(exprs.length).toBeGreaterThan(30);
    const r = checkExpressions(exprs);
    expect(r.output).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.ok).toBe(true);
    expect(checkExpressions([...exprs, 'sum by (le (rate(x[5m]))']).ok).toBe(false);
  });

  it('shows the latency quantiles from the histograms and the event rate by outcome', () => {
    const exprs = dashboardTargets().map((t) => t.expr);
    for (const h of ['sidecar_relay_duration_seconds', 'sidecar_health_check_round_trip_seconds', 'sidecar_spool_delivery_delay_seconds']) {
      for (const q of ['0.5', '0.9', '0.99'])
        expect(exprs.some((e) => e.startsWith(`histogram_quantile(${q}, sum by (le) (rate(${h}_bucket{`))).toBe(true);
    }
    expect(exprs.some((e) => e.startsWith('sum by (outcome) (rate(sidecar_relay_requests_total{'))).toBe(true);
  });
});

describe('metric names in the dashboard and the alerts, against a running sidecar (dist/main.js) with every feature on', () => {
  const channel = new LoopbackChannel();
  const downstream = new RecordingServer();
  let exposed: Set<string>;
  let sidecar: SidecarProcess | undefined;
  const redis = new RedisServer();

  beforeAll(async () => {
    const relayPort = await freePort();
    channel.target = `http://127.0.0.1:${relayPort}`;
    const channelUrl = await channel.listen();
    await downstream.listen();
    const dir = mkdtempSync(join(tmpdir(), 'monitoring-'));
    writeFileSync(join(dir, 'sidecar.yaml'), `dispatch:\n  header: X-Env\n  default: ${downstream.url}/hook\n  rules:\n    dev: {}\n`);
    await redis.start();
    const management = `http://127.0.0.1:${await freePort()}`;
    sidecar = spawnSidecar({
      MANAGEMENT_PORT: new URL(management).port,
      SIDECAR_CONFIG: join(dir, 'sidecar.yaml'),
      RELAY_PORT: String(relayPort),
      RELAY_MODE: 'spool',
      SMEE_CHANNEL_URL: channelUrl,
      AGENT_PORT: String(await freePort()),
      UPSTREAM_HEALTH_URLS: `${downstream.url}/health`,
      MONITOR_PORT: String(relayPort),
      PROMETHEUS_REMOTE_WRITE_URL: `${downstream.url}/api/v1/write`,
      SCRAPE_TARGETS: `${downstream.url}/metrics`,
      ENABLE_PPROF: 'true',
      WEBHOOK_SECRET: 'monitoring-webhook-secret',
      REDIS_URL: redis.url,
    });
    await Promise.race([
      sidecar.ready,
      sidecar.exited.then((code) => Promise.reject(new Error(`the sidecar exited with ${code}: ${sidecar!.lines.join('\n')}`))),
    ]);
    const features = (await request(management).get('/status')).body.features;
    expect(features).toEqual({
      relay: 'spool',
      dispatch: true,
      healthCheck: true,
      agent: true,
      debug: true,
      connections: [relayPort],
      remoteWrite: true,
      webhookAuth: true,
      coordination: true,
    });
    // Every family with its samples' names: a histogram's _bucket, _sum and _count, a summary's _sum and _count.
    const text = (await request(management).get('/metrics')).text;
    exposed = new Set();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exposed.add(name);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(name + s);
      if (type === 'summary') for (const s of ['_sum', '_count']) exposed.add(name + s);
    }
  }, 60_000);

  afterAll(() =>
    teardown(
      async () => {
        sidecar?.proc.kill('SIGTERM');
        await sidecar?.exited;
      },
      () => killLeftover(sidecar),
      () => Promise.all([channel.close(), downstream.close(), redis.close()]),
    ),
  );

  it('the dashboard queries only metrics the sidecar exposes', () => {
    const used = [...dashboardTargets().map((t) => t.expr), ...variableSelectors()].flatMap((e) => metricNames(withoutVariables(e)));
    expect(used.length).toBeGreaterThan(30);
    expect([...new Set(used)].filter((n) => !exposed.has(n))).toEqual([]);
  });

  it('the alert rules use only metrics the sidecar exposes', () => {
    const used = alertRules().flatMap((r) => metricNames(r.expr));
    expect([...new Set(used)].filter((n) => !exposed.has(n))).toEqual([]);
  });

  it('every feature has its metrics on the dashboard', () => {
    const used = new Set(dashboardTargets().flatMap((t) => metricNames(withoutVariables(t.expr))));
    for (const prefix of [
      'health_check',
      'sidecar_health_',
      'sidecar_relay_',
      'sidecar_dispatch_',
      'sidecar_spool_',
      'sidecar_agent_',
      'sidecar_connections_',
      'sidecar_remote_write_',
      'sidecar_scrape_',
      'sidecar_webhook_',
      'sidecar_coordination_',
    ]) {
      expect([prefix, [...used].some((n) => n.startsWith(prefix))]).toEqual([prefix, true]);
    }
  });
});

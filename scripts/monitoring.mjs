// Writes the generated files of k8s/monitoring/ from their sources:
// - prometheusrule.yaml: the groups of pod-sidecar.rules.yaml as a Prometheus Operator
//   PrometheusRule;
// - grafana-dashboard.json: the Grafana dashboard described below.
// `node scripts/monitoring.mjs` writes them; `--check` only compares and exits 1 when
// one is stale (the tests run it). Edit the rules file or this script, never the outputs.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'k8s', 'monitoring');
const RULES = join(DIR, 'pod-sidecar.rules.yaml');

export function prometheusRule() {
  const { groups } = parse(readFileSync(RULES, 'utf8'));
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'pod-sidecar',
      // The Prometheus Operator's ruleSelector picks rules by label; kube-prometheus-stack
      // selects `release: <its release name>` by default: adjust to yours.
      labels: {
        'app.kubernetes.io/name': 'pod-sidecar',
        'app.kubernetes.io/component': 'alerting',
        prometheus: 'k8s',
        role: 'alert-rules',
      },
    },
    spec: { groups },
  };
  return `# Generated from pod-sidecar.rules.yaml by scripts/monitoring.mjs: edit that file, then run\n# \`node scripts/monitoring.mjs\`. kubectl apply -n <namespace> -f prometheusrule.yaml\n${stringify(object, { lineWidth: 0 })}`;
}

// ---------------------------------------------------------------------------------------
// The dashboard. Every query selects the pods of the variables; one row per feature.

const SEL = 'namespace=~"$namespace", pod=~"$pod"';
const DS = { type: 'prometheus', uid: '${datasource}' };
const rate = (metric, extra = '') => `rate(${metric}{${SEL}${extra}}[$__rate_interval])`;
const quantiles = (bucket, by = '') =>
  [0.5, 0.9, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le${by}) (${rate(bucket)}))`,
    legend: `p${q * 100}${by ? ` {{${by.slice(2)}}}` : ''}`,
  }));

/** A panel: its type, title, unit, queries ({expr, legend}) and, optionally, what more Grafana needs. */
const panel = (type, title, unit, targets, more = {}) => ({ type, title, unit, targets, ...more });
const series = (title, unit, targets, more) => panel('timeseries', title, unit, targets, more);
const states = (title, targets, mappings) => panel('state-timeline', title, 'none', targets, { mappings });

const ROWS = [
  [
    'Smee round trip (health check)',
    [
      states(
        'Health check state',
        [{ expr: `health_check{${SEL}}`, legend: '{{pod}}' }],
        [
          [1, 'ok', 'green'],
          [0, 'failing', 'red'],
        ],
      ),
      series('Checks by result', 'ops', [{ expr: `sum by (result) (${rate('sidecar_health_checks_total')})`, legend: '{{result}}' }]),
      series('Round trip quantiles', 's', quantiles('sidecar_health_check_round_trip_seconds_bucket')),
      series('Health events by origin', 'ops', [
        { expr: `sum by (origin) (${rate('sidecar_health_events_total')})`, legend: '{{origin}}' },
      ]),
    ],
  ],
  [
    'Relay',
    [
      series('Requests by outcome', 'reqps', [
        { expr: `sum by (outcome) (${rate('sidecar_relay_requests_total')})`, legend: '{{outcome}}' },
      ]),
      series('Error ratio (not delivered)', 'percentunit', [
        {
          expr: `sum(${rate('sidecar_relay_requests_total', ', outcome=~"timeout|unreachable|busy|no_destination|spool_full|spool_unavailable"')}) / sum(${rate('sidecar_relay_requests_total', ', outcome!="health_event"')})`,
          legend: 'not delivered',
        },
      ]),
      series('Answer time quantiles', 's', quantiles('sidecar_relay_duration_seconds_bucket')),
      series('Answers by status class', 'reqps', [
        { expr: `sum by (status_class) (${rate('sidecar_relay_duration_seconds_count')})`, legend: '{{status_class}}' },
      ]),
      series('Dispatch by rule', 'reqps', [{ expr: `sum by (rule) (${rate('sidecar_dispatch_requests_total')})`, legend: '{{rule}}' }]),
    ],
  ],
  [
    'Webhook authenticity',
    [
      series('Refused (401) by reason', 'ops', [
        { expr: `sum by (reason) (${rate('sidecar_webhook_rejected_total')})`, legend: '{{reason}}' },
      ]),
      series('Refused (401) by sender', 'ops', [
        { expr: `sum by (sender) (${rate('sidecar_webhook_rejected_total')})`, legend: '{{sender}}' },
      ]),
      series('Verified by sender', 'ops', [{ expr: `sum by (sender) (${rate('sidecar_webhook_verified_total')})`, legend: '{{sender}}' }]),
    ],
  ],
  [
    'Replicas (coordination through Redis)',
    [
      states(
        'Coordinating',
        [{ expr: `sidecar_coordination_redis_up{${SEL}}`, legend: '{{pod}}' }],
        [
          [1, 'coordinating', 'green'],
          [0, 'alone', 'red'],
        ],
      ),
      series('Events by outcome', 'ops', [
        { expr: `sum by (outcome) (${rate('sidecar_coordination_events_total')})`, legend: '{{outcome}}' },
      ]),
      series('Possible duplicates', 'ops', [
        { expr: `sum by (reason) (${rate('sidecar_coordination_possible_duplicates_total')})`, legend: '{{reason}}' },
      ]),
      series('Held for other replicas', 'short', [{ expr: `sidecar_coordination_held_events{${SEL}}`, legend: '{{pod}}' }]),
      series('Redis outages', 'short', [
        { expr: `increase(sidecar_coordination_outages_total{${SEL}}[$__rate_interval])`, legend: '{{pod}}' },
      ]),
      series('Held bytes', 'bytes', [{ expr: `sidecar_coordination_held_bytes{${SEL}}`, legend: '{{pod}}' }]),
    ],
  ],
  [
    'Spool',
    [
      series('Depth (waiting events)', 'short', [{ expr: `sidecar_spool_events{${SEL}}`, legend: '{{pod}}' }]),
      series('Oldest waiting event', 's', [{ expr: `sidecar_spool_oldest_event_age_seconds{${SEL}}`, legend: '{{pod}}' }]),
      series(
        'Disk used of the limit',
        'percentunit',
        [{ expr: `sidecar_spool_bytes{${SEL}} / sidecar_spool_limit_bytes{${SEL}}`, legend: '{{pod}}' }],
        { max: 1 },
      ),
      series('Dead letters', 'short', [{ expr: `sidecar_spool_dead_letters{${SEL}}`, legend: '{{pod}}' }]),
      series('Deliveries by result', 'ops', [
        { expr: `sum by (result) (${rate('sidecar_spool_deliveries_total')})`, legend: '{{result}}' },
      ]),
      series('Queued → delivered quantiles', 's', quantiles('sidecar_spool_delivery_delay_seconds_bucket')),
    ],
  ],
  [
    'Agent (HAProxy agent-check)',
    [
      states(
        'Agent health',
        [{ expr: `sidecar_agent_healthy{${SEL}}`, legend: '{{pod}}' }],
        [
          [1, 'up', 'green'],
          [0, 'down', 'red'],
        ],
      ),
      states(
        'Agent state',
        [
          {
            expr: `max by (namespace, pod) ((sidecar_agent_status{${SEL}, status="ready"} == 1) * 0 or (sidecar_agent_status{${SEL}, status="drain"} == 1) * 1 or (sidecar_agent_status{${SEL}, status="maint"} == 1) * 2)`,
            legend: '{{pod}}',
          },
        ],
        [
          [0, 'ready', 'green'],
          [1, 'drain', 'orange'],
          [2, 'maint', 'blue'],
        ],
      ),
      series('Weight', 'percent', [{ expr: `sidecar_agent_weight_percent{${SEL}}`, legend: '{{pod}}' }], { max: 100 }),
      series('Checks up', 'short', [{ expr: `min by (check) (sidecar_agent_check_up{${SEL}})`, legend: '{{check}}' }]),
      series('Load', 'short', [{ expr: `sidecar_agent_load{${SEL}}`, legend: '{{pod}}' }]),
    ],
  ],
  [
    'Connection activity',
    [
      series('Established connections', 'short', [{ expr: `sidecar_connections_active{${SEL}}`, legend: '{{pod}} :{{port}}' }]),
      series('TIME_WAIT connections', 'short', [{ expr: `sidecar_connections_waiting{${SEL}}`, legend: '{{pod}} :{{port}}' }]),
      series('Socket table read failures', 'ops', [
        { expr: `sum by (pod) (${rate('sidecar_connections_read_failures_total')})`, legend: '{{pod}}' },
      ]),
    ],
  ],
  [
    'Remote write',
    [
      series('Time since the last accepted push', 's', [
        { expr: `time() - sidecar_remote_write_last_success_timestamp_seconds{${SEL}}`, legend: '{{pod}}' },
      ]),
      series('Pushes by result', 'ops', [{ expr: `sum by (result) (${rate('sidecar_remote_write_pushes_total')})`, legend: '{{result}}' }]),
      series('Queued pushes', 'short', [{ expr: `sidecar_remote_write_queue_length{${SEL}}`, legend: '{{pod}}' }]),
      series('Samples sent and dropped', 'short', [
        { expr: `sum(${rate('sidecar_remote_write_samples_sent_total')})`, legend: 'sent' },
        { expr: `sum by (reason) (${rate('sidecar_remote_write_samples_dropped_total')})`, legend: 'dropped: {{reason}}' },
      ]),
      series('Scrape targets up', 'short', [{ expr: `sidecar_scrape_target_up{${SEL}}`, legend: '{{pod}} {{instance}}' }]),
    ],
  ],
  [
    'Process',
    [
      series('Resident memory', 'bytes', [{ expr: `process_resident_memory_bytes{${SEL}}`, legend: '{{pod}}' }]),
      series('CPU', 'percentunit', [{ expr: rate('process_cpu_seconds_total'), legend: '{{pod}}' }]),
      series('Event loop delay p99', 's', [{ expr: `nodejs_eventloop_lag_p99_seconds{${SEL}}`, legend: '{{pod}}' }]),
    ],
  ],
];

function grafanaPanel(p, id, x, y, w) {
  const out = {
    id,
    type: p.type,
    title: p.title,
    datasource: DS,
    gridPos: { h: 7, w, x, y },
    fieldConfig: {
      defaults: {
        unit: p.unit,
        ...(p.max !== undefined ? { min: 0, max: p.max } : {}),
        ...(p.mappings
          ? {
              mappings: [
                {
                  type: 'value',
                  options: Object.fromEntries(p.mappings.map(([v, text, color], i) => [String(v), { text, color, index: i }])),
                },
              ],
              color: { mode: 'thresholds' },
            }
          : {}),
      },
      overrides: [],
    },
    options:
      p.type === 'state-timeline'
        ? { showValue: 'never', mergeValues: true, legend: { showLegend: false } }
        : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr: t.expr,
      legendFormat: t.legend,
      range: true,
    })),
  };
  return out;
}

export function dashboard() {
  const panels = [];
  let id = 1;
  let y = 0;
  for (const [title, rowPanels] of ROWS) {
    panels.push({ id: id++, type: 'row', title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y++ }, panels: [] });
    const w = rowPanels.length % 3 === 0 || rowPanels.length > 4 ? 8 : 24 / rowPanels.length;
    rowPanels.forEach((p, i) => {
      const perLine = 24 / w;
      panels.push(grafanaPanel(p, id++, (i % perLine) * w, y + Math.floor(i / perLine) * 7, w));
    });
    y += Math.ceil(rowPanels.length / (24 / w)) * 7;
  }
  const variable = (name, label, query) => ({
    name,
    label,
    type: 'query',
    datasource: DS,
    query: { query, refId: name },
    definition: query,
    refresh: 2,
    includeAll: true,
    allValue: '.*',
    multi: true,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  });
  const board = {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
      { type: 'panel', id: 'state-timeline', name: 'State timeline', version: '' },
    ],
    uid: 'pod-sidecar',
    title: 'pod-sidecar',
    description:
      'Relay, smee round trip, spool, agent, connections and remote write of pod-sidecar, one row per feature. Rows of features a pod does not use stay empty.',
    tags: ['pod-sidecar', 'webhooks'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '' },
        // sidecar_health_events_total exists in every sidecar, whatever features are on.
        variable('namespace', 'Namespace', 'label_values(sidecar_health_events_total, namespace)'),
        variable('pod', 'Pod', 'label_values(sidecar_health_events_total{namespace=~"$namespace"}, pod)'),
      ],
    },
    annotations: { list: [] },
    panels,
  };
  return `${JSON.stringify(board, null, 2)}\n`;
}

const OUTPUTS = { 'prometheusrule.yaml': prometheusRule, 'grafana-dashboard.json': dashboard };

if (import.meta.url === `file://${process.argv[1]}`) {
  const check = process.argv.includes('--check');
  const stale = [];
  for (const [name, make] of Object.entries(OUTPUTS)) {
    const path = join(DIR, name);
    const want = make();
    let have = null;
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (have === want) continue;
    if (check) stale.push(name);
    else writeFileSync(path, want);
  }
  if (stale.length > 0) {
    process.stderr.write(`k8s/monitoring: ${stale.join(', ')} out of date: run node scripts/monitoring.mjs\n`);
    process.exit(1);
  }
}

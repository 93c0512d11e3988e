import { createHash } from 'node:crypto';

/**
 * The status page served at GET / on the management port: one self-contained HTML
 * document (no external script, style, font or image: the pod may have no internet) that
 * fetches /status (a relative URL, so it also works behind `kubectl proxy`'s path prefix)
 * and renders it, then again every REFRESH_SECONDS. Everything it shows comes from that
 * JSON, written into the page as text (never as HTML). Times are shown relative to the
 * sidecar's clock (`time` in the JSON), not the browser's.
 *
 * A feature's section is one function in SECTIONS below: it gets the /status JSON and
 * returns null when the feature is off, else a section made with `section()`.
 */

export const REFRESH_SECONDS = 5;

const STYLE = String.raw`
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --off: #6e7781; --bg: #f6f8fa; --card: #fff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; }
@media (prefers-color-scheme: dark) {
  :root { --ok: #3fb950; --warn: #d29922; --bad: #f85149; --off: #8b949e; --bg: #0d1117; --card: #161b22; --fg: #e6edf3; --muted: #9198a1; --line: #30363d; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline; }
header h1 { font-size: 1.15rem; margin: 0; }
header .meta { color: var(--muted); font-size: .85rem; }
#problem { margin: .75rem 1rem 0; padding: .5rem .75rem; border-radius: 6px; background: var(--bad); color: #fff; }
main { display: grid; gap: .75rem; padding: .75rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 23rem), 1fr)); align-items: start; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; min-width: 0; }
section h2 { font-size: 1rem; margin: 0 0 .5rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; color: #fff; background: var(--off); }
.badge.ok { background: var(--ok); } .badge.warn { background: var(--warn); } .badge.bad { background: var(--bad); }
.since { color: var(--muted); font-size: .8rem; font-weight: normal; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .15rem .75rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin-top: .5rem; font-size: .9rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: .8rem; }
th, td { text-align: right; padding: .1rem .4rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
.scroll { overflow-x: auto; }
th:first-child, td:first-child { text-align: left; white-space: normal; overflow-wrap: anywhere; }
ul { margin: .25rem 0 0; padding-left: 1.2rem; }
.note { color: var(--muted); font-size: .85rem; margin: .5rem 0 0; }
.bad-text { color: var(--bad); } .warn-text { color: var(--warn); }
svg.chart { width: 100%; height: 4.5rem; margin-top: .5rem; display: block; }
svg.chart .ok { fill: var(--ok); } svg.chart .bad { fill: var(--bad); } svg.chart .axis { stroke: var(--line); }
.meter { height: .5rem; border-radius: 4px; background: var(--line); overflow: hidden; margin-top: .25rem; }
.meter > div { height: 100%; background: var(--ok); }
.meter.warn > div { background: var(--warn); } .meter.bad > div { background: var(--bad); }
`;

const SCRIPT = String.raw`
'use strict';
var REFRESH_MS = __REFRESH__ * 1000;
var SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs) {
  var node = document.createElement(tag);
  for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
  for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
  return node;
}
function append(node, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
  node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
}
function num(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en'); }
function ms(n) { return n === null || n === undefined ? '–' : (n >= 1000 ? (n / 1000).toFixed(n >= 10000 ? 0 : 1) + ' s' : Math.round(n * 10) / 10 + ' ms'); }
function bytes(n) {
  if (n === null || n === undefined) return '–';
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  seconds = Math.max(0, seconds);
  if (seconds < 10) return Math.round(seconds * 10) / 10 + ' s';
  if (seconds < 60) return Math.round(seconds) + ' s';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min ' + Math.round(seconds % 60) + ' s';
  if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
  return Math.floor(seconds / 86400) + ' d ' + Math.floor((seconds % 86400) / 3600) + ' h';
}
// A time as "3 min ago", measured on the sidecar's clock; the exact time is its tooltip.
function ago(iso, now) {
  if (!iso) return '–';
  return el('time', { datetime: iso, title: iso }, duration((now - Date.parse(iso)) / 1000) + ' ago');
}

function dl(rows) {
  var list = el('dl');
  rows.forEach(function (r) {
    if (!r) return;
    list.appendChild(el('dt', null, r[0]));
    list.appendChild(el('dd', r[2] ? { 'data-field': r[2] } : null, r[1]));
  });
  return list;
}
function table(caption, head, rows, field) {
  if (rows.length === 0) return null;
  return el('div', { class: 'scroll' }, el('table', field ? { 'data-field': field } : null, el('caption', null, caption),
    el('thead', null, el('tr', null, head.map(function (h) { return el('th', { scope: 'col' }, h); }))),
    el('tbody', null, rows.map(function (r) { return el('tr', null, r.map(function (c) { return el('td', null, c); })); }))));
}
function badge(text, tone) { return el('span', { class: 'badge ' + tone, 'data-state': tone }, text); }
function meter(fraction, tone) {
  var bar = el('div');
  bar.style.width = Math.min(100, Math.max(0, fraction * 100)).toFixed(1) + '%';
  return el('div', { class: 'meter ' + tone, role: 'meter', 'aria-valuenow': String(Math.round(fraction * 100)), 'aria-valuemin': '0', 'aria-valuemax': '100' }, bar);
}
// A feature's card: its name, a state badge, since when, then its content.
function section(feature, title, state, tone, since, now) {
  var head = el('h2', null, title, state === null ? null : badge(state, tone),
    since ? el('span', { class: 'since' }, 'since ', ago(since, now)) : null);
  var card = el('section', { 'data-feature': feature, 'aria-label': title }, head);
  for (var i = 6; i < arguments.length; i++) append(card, arguments[i]);
  return card;
}

// Bars, one per check, oldest left: height is the round trip, a failed check a full red bar.
function roundTripChart(history) {
  var svg = document.createElementNS(SVG, 'svg');
  var width = 300, height = 60, slot = width / Math.max(history.length, 10);
  svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('data-field', 'healthCheck.history');
  var max = 0;
  history.forEach(function (h) { if (h.roundTripMs !== null && h.roundTripMs > max) max = h.roundTripMs; });
  svg.setAttribute('aria-label', 'last ' + history.length + ' round trips, the longest ' + ms(max));
  history.forEach(function (h, i) {
    var ok = h.status === 'success';
    var barHeight = ok ? Math.max(2, (h.roundTripMs / (max || 1)) * (height - 4)) : height - 4;
    var rect = document.createElementNS(SVG, 'rect');
    rect.setAttribute('x', String(i * slot + slot * 0.1));
    rect.setAttribute('width', String(slot * 0.8));
    rect.setAttribute('y', String(height - barHeight));
    rect.setAttribute('height', String(barHeight));
    rect.setAttribute('class', ok ? 'ok' : 'bad');
    rect.setAttribute('data-round-trip-ms', ok ? String(h.roundTripMs) : '');
    var tip = document.createElementNS(SVG, 'title');
    tip.textContent = h.checkedAt + ': ' + (ok ? ms(h.roundTripMs) : h.reason);
    rect.appendChild(tip);
    svg.appendChild(rect);
  });
  return svg;
}

var SECTIONS = [
  function healthCheck(s, now) {
    var h = s.healthCheck;
    if (!h) return null;
    var tone = h.status === 'success' ? 'ok' : h.status === 'failure' ? 'bad' : 'off';
    var okTimes = h.history.filter(function (r) { return r.status === 'success'; }).map(function (r) { return r.roundTripMs; }).sort(function (a, b) { return a - b; });
    var failed = h.history.length - okTimes.length;
    return section('healthCheck', 'Smee round trip', h.status, tone, h.since, now,
      dl([
        ['last check', ago(h.checkedAt, now), 'healthCheck.checkedAt'],
        ['round trip', ms(h.roundTripMs), 'healthCheck.roundTripMs'],
        ['message', h.message === null ? '–' : h.message, 'healthCheck.message'],
        ['every', duration(h.intervalSeconds)],
        ['last ' + h.history.length + (h.history.length === 1 ? ' check' : ' checks'), okTimes.length + ' ok, ' + failed + ' failed' +
          (okTimes.length ? '; median ' + ms(okTimes[Math.floor((okTimes.length - 1) / 2)]) + ', longest ' + ms(okTimes[okTimes.length - 1]) : ''), 'healthCheck.historySummary'],
      ]),
      h.history.length ? roundTripChart(h.history) : el('p', { class: 'note' }, 'no check has completed yet'));
  },

  function relay(s, now) {
    var r = s.relay;
    if (!r) return null;
    var outcomes = Object.keys(r.requests).filter(function (k) { return r.requests[k] > 0; });
    var classes = Object.keys(r.latency).sort();
    return section('relay', 'Relay (' + (s.features.relay || 'health events only') + ')', r.listening ? 'listening' : 'not listening', r.listening ? 'ok' : 'bad', null, now,
      dl([['port', r.port], ['in flight', num(r.inFlight), 'relay.inFlight']]),
      table('requests since start-up, by outcome', ['outcome', 'requests'], outcomes.map(function (k) { return [k, num(r.requests[k])]; }), 'relay.requests')
        || el('p', { class: 'note' }, 'no request yet'),
      table('time to answer, by status class', ['status', 'count', 'p50', 'p90', 'p99', 'mean'], classes.map(function (c) {
        var l = r.latency[c];
        return [c, num(l.count), ms(l.p50Ms), ms(l.p90Ms), ms(l.p99Ms), ms(l.meanMs)];
      }), 'relay.latency'));
  },

  function dispatch(s, now) {
    var d = s.dispatch;
    if (!d) return null;
    return section('dispatch', 'Dispatch', null, null, null, now,
      dl([['header', d.header], ['rules', d.rules.length ? d.rules.join(', ') : 'none', 'dispatch.rules'], ['default destination', d.hasDefault ? 'yes' : 'no']]));
  },

  function webhookAuth(s, now) {
    var w = s.webhookAuth;
    if (!w) return null;
    var refused = s.relay && s.relay.requests ? s.relay.requests.unauthorized || 0 : 0;
    return section('webhookAuth', 'Webhook authenticity', 'verifying', 'ok', null, now,
      dl([
        ['secrets from', w.secret === null ? 'dispatch rules only' : w.secret, 'webhookAuth.secret'],
        ['rules with their own', w.rulesWithOwnSecret.length ? w.rulesWithOwnSecret.join(', ') : 'none', 'webhookAuth.rulesWithOwnSecret'],
        ['timestamp tolerance', duration(w.toleranceSeconds), 'webhookAuth.toleranceSeconds'],
        ['refused (401) since start-up', el('span', { class: refused > 0 ? 'bad-text' : '' }, num(refused)), 'webhookAuth.refused'],
      ]),
      el('p', { class: 'note' }, 'by reason and sender: sidecar_webhook_rejected_total on /metrics'));
  },

  function coordination(s, now) {
    var c = s.coordination;
    if (!c) return null;
    var up = c.state === 'coordinating';
    var fill = c.holdMaxBytes ? c.heldBytes / c.holdMaxBytes : 0;
    return section('coordination', 'Replicas (Redis)', c.state, up ? 'ok' : 'bad', c.since, now,
      dl([
        ['this replica', c.replica, 'coordination.replica'],
        ['delivering', num(c.delivering), 'coordination.delivering'],
        ['held for other replicas', num(c.held) + ' (' + bytes(c.heldBytes) + ' of ' + bytes(c.holdMaxBytes) + ')', 'coordination.held'],
        c.lastError ? ['last error', el('span', { class: 'bad-text' }, c.lastError), 'coordination.lastError'] : null,
      ]),
      meter(fill, fill > 0.9 ? 'bad' : fill > 0.7 ? 'warn' : ''),
      up ? null : el('p', { class: 'note' }, 'Redis unreachable: this replica delivers what it receives; duplicates possible'));
  },

  function spool(s, now) {
    var p = s.spool;
    if (!p) return null;
    var fill = p.maxBytes ? p.bytes / p.maxBytes : 0;
    var tone = p.deadLetters > 0 || fill > 0.9 ? 'bad' : p.events > 0 ? 'warn' : 'ok';
    var state = p.deadLetters > 0 ? 'dead letters' : p.events > 0 ? 'delivering' : 'empty';
    return section('spool', 'Spool', state, tone, null, now,
      dl([
        ['waiting events', num(p.events), 'spool.events'],
        ['oldest waiting', p.oldestEventAgeSeconds === null ? 'none' : duration(p.oldestEventAgeSeconds), 'spool.oldestEventAgeSeconds'],
        ['dead letters', el('span', { class: p.deadLetters > 0 ? 'bad-text' : '' }, num(p.deadLetters)), 'spool.deadLetters'],
        ['disk', bytes(p.bytes) + ' of ' + bytes(p.maxBytes) + ' (' + (fill * 100).toFixed(1) + '%)', 'spool.bytes'],
      ]),
      meter(fill, fill > 0.9 ? 'bad' : fill > 0.7 ? 'warn' : ''),
      el('p', { class: 'note' }, 'per destination: GET /spool; dead letters: GET /spool/dead-letters'));
  },

  function agent(s, now) {
    var a = s.agent;
    if (!a) return null;
    var tone = !a.healthy ? 'bad' : a.status === 'ready' ? 'ok' : 'warn';
    return section('agent', 'Agent', (a.healthy ? 'up' : 'down') + ' · ' + a.status, tone, a.since, now,
      dl([
        ['weight', a.weight, 'agent.weight'],
        ['reply', a.agentMessage, 'agent.agentMessage'],
        ['damped', a.damped ? 'yes (dampening or drain grace)' : 'no', 'agent.damped'],
      ]),
      a.reasons.length ? el('ul', { 'data-field': 'agent.reasons' }, a.reasons.map(function (r) { return el('li', null, r); })) : el('p', { class: 'note' }, 'no reason against it'),
      el('p', { class: 'note' }, 'the full report: GET /agent/report'));
  },

  function connections(s, now) {
    var c = s.connections;
    if (!s.features.connections) return null;
    if (!c) return section('connections', 'Connections', 'not read yet', 'off', null, now);
    var tone = c.error ? 'bad' : c.listening ? 'ok' : 'warn';
    var state = c.error ? 'unreadable' : c.active_connections > 0 ? 'active' : c.seconds_since_active === null ? 'closing (time-wait)' : 'idle';
    return section('connections', 'Connections (port ' + s.features.connections.join(', ') + ')', state, tone, null, now,
      dl([
        ['active', num(c.active_connections), 'connections.active_connections'],
        ['time-wait', num(c.waiting_connections), 'connections.waiting_connections'],
        ['listening', c.listening === null ? '–' : c.listening ? 'yes' : 'no', 'connections.listening'],
        ['quiet for', c.seconds_since_active === null ? 'not quiet' : duration(c.seconds_since_active), 'connections.seconds_since_active'],
        ['read', ago(c.refreshed_at, now)],
        c.error ? ['error', el('span', { class: 'bad-text' }, c.error), 'connections.error'] : null,
      ]),
      c.ports.length > 1 ? table('per port', ['port', 'active', 'time-wait', 'listening'], c.ports.map(function (p) {
        return [p.port, num(p.active_connections), num(p.waiting_connections), p.listening ? 'yes' : 'no'];
      })) : null);
  },

  function remoteWrite(s, now) {
    var w = s.remoteWrite;
    if (!w) return null;
    var lag = w.lastSuccessAt ? (now - Date.parse(w.lastSuccessAt)) / 1000 : null;
    var tone = w.consecutiveFailures > 0 ? 'bad' : w.lastSuccessAt ? 'ok' : 'off';
    return section('remoteWrite', 'Remote write', w.consecutiveFailures > 0 ? 'failing' : w.lastSuccessAt ? 'pushing' : 'no push yet', tone, null, now,
      dl([
        ['last accepted push', lag === null ? 'never' : duration(lag) + ' ago', 'remoteWrite.lag'],
        ['queued pushes', num(w.queueLength), 'remoteWrite.queueLength'],
        ['failures in a row', num(w.consecutiveFailures), 'remoteWrite.consecutiveFailures'],
        w.lastError ? ['last error', el('span', { class: 'bad-text' }, w.lastError), 'remoteWrite.lastError'] : null,
      ]),
      table('scrape targets', ['target', 'up', 'reason'], w.targets.map(function (t) { return [t.instance, t.up ? 'yes' : 'no', t.reason || '']; }), 'remoteWrite.targets'));
  },
];

function render(s) {
  var now = Date.parse(s.time);
  var main = document.getElementById('sections');
  var cards = [];
  SECTIONS.forEach(function (f) {
    try {
      var card = f(s, now);
      if (card) cards.push(card);
    } catch (e) {
      cards.push(section(f.name, f.name, 'cannot show', 'bad', null, now, el('p', { class: 'note' }, String(e))));
    }
  });
  main.replaceChildren.apply(main, cards);
  var on = Object.keys(s.features).filter(function (k) { var v = s.features[k]; return v !== false && v !== null; })
    .map(function (k) { var v = s.features[k]; return v === true ? k : k + ' (' + (Array.isArray(v) ? v.join(', ') : v) + ')'; });
  document.getElementById('meta').replaceChildren('up ', duration((now - Date.parse(s.startedAt)) / 1000),
    ' · features: ', on.join(', ') || 'none', ' · updated ', el('time', { datetime: s.time, title: s.time }, s.time.slice(11, 19) + ' UTC'));
  document.body.setAttribute('data-status-time', s.time);
}

function refresh() {
  var problem = document.getElementById('problem');
  fetch('status', { cache: 'no-store', headers: { accept: 'application/json' } })
    .then(function (res) {
      if (!res.ok) throw new Error('/status answered ' + res.status);
      return res.json();
    })
    .then(function (s) { render(s); problem.hidden = true; })
    .catch(function (e) { problem.textContent = 'Cannot refresh (' + e.message + '); the figures below may be stale.'; problem.hidden = false; })
    .finally(function () { setTimeout(refresh, REFRESH_MS); });
}
refresh();
`.replace('__REFRESH__', String(REFRESH_SECONDS));

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/**
 * Only the page's own inline script and style may run, it may only fetch from its origin,
 * and nothing may frame it; `data:` images are the empty favicon.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>pod-sidecar status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header><h1>pod-sidecar</h1><span class="meta" id="meta">loading /status…</span></header>
<p id="problem" role="alert" hidden></p>
<main id="sections"></main>
<noscript><p>This page needs JavaScript; the same data is at <a href="status">/status</a> as JSON.</p></noscript>
<script>${SCRIPT}</script>
</body>
</html>
`;

// npm run bench — the relay side by side with the bare downstream, nginx as a reverse proxy
// and a bare node:http + undici relay, in one run, with the same signed 8 KB GitHub-style
// webhook. Every setup is started (and warmed up) first; then the load goes to each in
// turn, round after round, so that a slow or fast spell of the shared machine falls on
// all of them alike. Prints one table of the medians over the rounds (requests/s, p50,
// p99, errors summed) and ratios, the CPU time each process under test spent per request
// (from /proc: steady where requests/s swing with the machine), the sidecar's idle and
// peak RSS and its cold start to /readyz. Uses nginx and wrk when installed (Debian), a Node downstream and autocannon
// otherwise; pins the processes under test to one CPU when taskset exists.
//
//   npm run bench -- [--duration 5] [--rounds 3] [--connections 50] [--rows a,b,c,d,e,f,g,h,i]
//
// (g) and (h) send every request with its own delivery id; (h) coordinates through a
// redis-server the bench starts (Debian's), (g) is the same without it.
// (i) is (c) with webhook verification on (WEBHOOK_SECRET: one HMAC-SHA256 of the 8 KB body
// per request); the line under the table compares the two from the same rounds.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  arg,
  BENCH_SECRET,
  bodyBytes,
  startRedis,
  cleanUp,
  CONNECTIONS,
  cpuSeconds,
  freePort,
  imageNodeOptions,
  kib,
  load,
  NGINX,
  pin,
  root,
  start,
  startDownstream,
  startNginxProxy,
  startSidecar,
  stop,
  TASKSET,
  TEST_CORE,
  twoCores,
  waitHttp,
  work,
  WRK,
} from './bench-kit.mjs';

const DURATION = Number(arg('duration', '5'));
const ROUNDS = Number(arg('rounds', '3'));
const ROWS = arg('rows', 'a,b,c,d,e,f,g,h,i').split(',');
const run = (port, uniqueIds = false) => load(port, { seconds: DURATION, uniqueIds });
let cacheColdMs = NaN;
let cacheIdleMiB = NaN;

// --- the setups -----------------------------------------------------------------------------
/** Each: how to start it (its port, and the process to read RSS from and stop). */
function setups(downstreamPort) {
  const sidecar = async (env) => {
    const s = await startSidecar(downstreamPort, env);
    return { port: s.port, proc: s.proc, idleMiB: s.idleKiB / 1024, coldMs: s.coldMs };
  };
  return [
    ['a', `(a) downstream direct (${NGINX ? 'nginx' : 'node'})`, async () => ({ port: downstreamPort })],
    [
      'b',
      '(b) nginx reverse proxy',
      async () => {
        if (!NGINX) throw new Error('nginx not installed');
        const n = await startNginxProxy(downstreamPort);
        return { port: n.port, proc: n.proc };
      },
    ],
    ['c', '(c) pod-sidecar relay, proxy mode', () => sidecar({})],
    [
      'd',
      '(d) pod-sidecar relay, dispatch rules',
      () => {
        const file = join(work, 'dispatch.yaml');
        writeFileSync(
          file,
          `dispatch:
  header: X-Environment
  rules:
    dev:
      destination: http://127.0.0.1:${downstreamPort}/dev
      patch:
        - set: { X-Dispatched: "true" }
        - remove: X-Debug
    staging:
      destination: http://127.0.0.1:${downstreamPort}/staging
    prod:
      destination: http://127.0.0.1:${downstreamPort}/prod
`,
        );
        return sidecar({ SIDECAR_CONFIG: file });
      },
    ],
    [
      'e',
      '(e) pod-sidecar relay, spool mode',
      () => sidecar({ RELAY_MODE: 'spool', SPOOL_DEDUP_HEADER: 'none', SPOOL_MAX_BYTES: String(8 * 1024 ** 3) }),
    ],
    ['g', '(g) pod-sidecar relay, proxy mode, a delivery id per request', async () => ({ ...(await sidecar({})), uniqueIds: true })],
    [
      'h',
      '(h) as (g), coordinated through Redis',
      async () => {
        const redis = await startRedis();
        return { ...(await sidecar({ REDIS_URL: redis.url })), uniqueIds: true };
      },
    ],
    [
      'f',
      '(f) reference: node:http + undici, bare',
      async () => {
        const port = await freePort();
        const p = start(
          pin(TEST_CORE, [process.execPath, join(root, 'scripts', 'bench-reference-relay.cjs'), String(port), String(downstreamPort)]),
          { env: { PATH: process.env.PATH, NODE_OPTIONS: imageNodeOptions() } },
        );
        await waitHttp(`http://127.0.0.1:${port}/`);
        return { port, proc: p };
      },
    ],
    ['i', '(i) pod-sidecar relay, proxy mode, webhook verification on', () => sidecar({ WEBHOOK_SECRET: BENCH_SECRET })],
  ].filter(([key]) => ROWS.includes(key));
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// --- the run --------------------------------------------------------------------------------
const results = [];
try {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  const downstreamPort = await startDownstream();
  const live = [];
  for (const [key, label, startIt] of setups(downstreamPort)) {
    process.stderr.write(`bench: starting ${label}…\n`);
    try {
      const s = await startIt();
      await run(s.port, s.uniqueIds); // warm-up: JIT and pools, not measured
      live.push({ key, label, ...s, runs: [] });
    } catch (e) {
      results.push({ key, label, note: e.message.split('\n')[0] });
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const s of live) {
      process.stderr.write(`bench: round ${round}/${ROUNDS}, ${s.label}…\n`);
      const cpuBefore = s.proc ? cpuSeconds(s.proc.pid) : NaN;
      const r = await run(s.port, s.uniqueIds);
      const cpu = s.proc ? cpuSeconds(s.proc.pid) - cpuBefore : NaN;
      s.runs.push({ ...r, cpuUsPerReq: (cpu * 1e6) / (r.rps * DURATION) });
    }
  }
  for (const s of live) {
    const peakKiB = s.proc ? kib(s.proc.pid, 'VmHWM') : NaN;
    if (s.proc) await stop(s.proc);
    results.push({
      key: s.key,
      label: s.label,
      rps: median(s.runs.map((r) => r.rps)),
      p50: median(s.runs.map((r) => r.p50)),
      p99: median(s.runs.map((r) => r.p99)),
      errors: s.runs.reduce((n, r) => n + r.errors, 0),
      cpuUsPerReq: median(s.runs.map((r) => r.cpuUsPerReq)),
      idleMiB: s.idleMiB,
      peakMiB: s.key === 'a' || s.key === 'b' ? NaN : peakKiB / 1024,
      coldMs: s.coldMs,
      spread: s.runs.map((r) => Math.round(r.rps)).join('/'),
    });
  }
  results.sort((x, y) => x.key.localeCompare(y.key));
  if (ROWS.includes('c')) {
    process.stderr.write('bench: cold start with the compile cache…\n');
    const s = await startSidecar(downstreamPort, {}, { compileCache: true });
    cacheColdMs = s.coldMs;
    cacheIdleMiB = s.idleKiB / 1024;
    await stop(s.proc);
  }
} finally {
  await cleanUp();
}

// --- the table ------------------------------------------------------------------------------
const a = results.find((r) => r.key === 'a' && r.rps);
const b = results.find((r) => r.key === 'b' && r.rps);
const ref = results.find((r) => r.key === 'f' && r.rps);
const f = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '–');
const ratio = (r, base) => (base && r.rps ? `${(r.rps / base.rps).toFixed(2)}×` : '–');
const cells = [
  [
    'setup',
    'req/s',
    'rounds req/s',
    'p50 ms',
    'p99 ms',
    'errors',
    'vs (a)',
    'vs (b)',
    'p99 vs (b)',
    'vs (f)',
    'CPU µs/req',
    'CPU vs (f)',
    'idle RSS MiB',
    'peak RSS MiB',
    'cold start ms',
  ],
];
for (const r of results) {
  if (r.note) {
    cells.push([r.label, `not measured: ${r.note}`, '', '', '', '', '', '', '', '', '', '', '', '', '']);
    continue;
  }
  cells.push([
    r.label,
    f(r.rps),
    r.spread,
    f(r.p50, 2),
    f(r.p99, 2),
    String(r.errors),
    ratio(r, a),
    ratio(r, b),
    b && r.p99 ? `${(r.p99 / b.p99).toFixed(2)}×` : '–',
    ratio(r, ref),
    f(r.cpuUsPerReq),
    ref && r.cpuUsPerReq ? `${(r.cpuUsPerReq / ref.cpuUsPerReq).toFixed(2)}×` : '–',
    f(r.idleMiB, 1),
    f(r.peakMiB, 1),
    f(r.coldMs),
  ]);
}
const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)));
const line = (c) => `| ${c.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`;
console.log(
  `\npod-sidecar bench — ${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, node ${process.version}, ` +
    `${WRK ? 'wrk' : 'autocannon'} ${CONNECTIONS} connections, medians of ${ROUNDS} interleaved rounds × ${DURATION} s, ${bodyBytes.length} B signed webhook, ` +
    `processes under test ${TASKSET && twoCores ? `pinned to CPU ${TEST_CORE}` : 'not pinned'}\n`,
);
console.log(line(cells[0]));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const c of cells.slice(1)) console.log(line(c));
const g = results.find((r) => r.key === 'g' && r.rps);
const h = results.find((r) => r.key === 'h' && r.rps);
if (g && h) {
  console.log(
    `\nCoordination through Redis, (h) against (g) in this run: ${(h.rps / g.rps).toFixed(2)}× the requests/s, p50 ${(h.p50 / g.p50).toFixed(2)}×, p99 ${(h.p99 / g.p99).toFixed(2)}× (+${(h.p99 - g.p99).toFixed(2)} ms), CPU per request ${(h.cpuUsPerReq / g.cpuUsPerReq).toFixed(2)}×.`,
  );
}
const c = results.find((r) => r.key === 'c' && r.rps);
const i = results.find((r) => r.key === 'i' && r.rps);
if (c && i) {
  console.log(
    `\nWebhook verification, (i) on against (c) off in the same rounds: ${(i.rps / c.rps).toFixed(2)}× the requests/s, ` +
      `p99 ${(i.p99 / c.p99).toFixed(2)}×, CPU ${f(i.cpuUsPerReq)} against ${f(c.cpuUsPerReq)} µs/req (${f(i.cpuUsPerReq - c.cpuUsPerReq)} µs more), ${i.errors} errors.`,
  );
}
if (Number.isFinite(cacheColdMs)) {
  console.log(
    `\nWith the image's opt-in compile cache (NODE_COMPILE_CACHE=/app/.compile-cache), (c) took ${cacheColdMs.toFixed(0)} ms to start and idled at ${cacheIdleMiB.toFixed(1)} MiB.`,
  );
}

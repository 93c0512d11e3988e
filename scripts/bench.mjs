// npm run bench — the relay side by side with the bare downstream and nginx as a reverse
// proxy, in one run, with the same signed 8 KB GitHub-style webhook. Prints one table of
// requests/s, p50, p99, errors and ratios, plus the sidecar's idle and peak RSS and its
// cold start to /readyz. Uses nginx and wrk when installed (Debian), a Node downstream and
// autocannon otherwise; pins the process under test to one CPU when taskset exists.
//
//   npm run bench -- [--duration 10] [--connections 50] [--rows a,b,c,d,e]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { arg, bodyBytes, cleanUp, CONNECTIONS, freePort, imageNodeOptions, kib, load, NGINX, pin, root, start, startDownstream, startNginxProxy, startSidecar, stop, TASKSET, TEST_CORE, twoCores, waitHttp, work, WRK } from './bench-kit.mjs';

const DURATION = Number(arg('duration', '10'));
const ROWS = arg('rows', 'a,b,c,d,e,f').split(',');
const run = (port) => load(port, { seconds: DURATION });
let cacheColdMs = NaN;
let cacheIdleMiB = NaN;

// --- the run --------------------------------------------------------------------------------
const results = [];
async function row(key, label, run) {
  if (!ROWS.includes(key)) return;
  process.stderr.write(`bench: ${label}…\n`);
  try {
    results.push({ key, label, ...(await run()) });
  } catch (e) {
    results.push({ key, label, note: e.message.split('\n')[0] });
  }
}

async function sidecarRow(downstreamPort, env) {
  const s = await startSidecar(downstreamPort, env);
  await run(s.port); // warm-up: JIT and pools, not measured
  const r = await run(s.port);
  const peakKiB = kib(s.proc.pid, 'VmHWM');
  await stop(s.proc);
  return { ...r, idleMiB: s.idleKiB / 1024, peakMiB: peakKiB / 1024, coldMs: s.coldMs };
}

try {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  const downstreamPort = await startDownstream();

  await row('a', `(a) downstream direct (${NGINX ? 'nginx' : 'node'})`, () => run(downstreamPort));
  await row('b', '(b) nginx reverse proxy', async () => {
    if (!NGINX) throw new Error('nginx not installed');
    const n = await startNginxProxy(downstreamPort);
    await run(n.port);
    const r = await run(n.port);
    await stop(n.proc);
    return r;
  });
  await row('c', '(c) pod-sidecar relay, proxy mode', () => sidecarRow(downstreamPort, {}));
  await row('d', '(d) pod-sidecar relay, dispatch rules', () => {
    const file = join(work, 'dispatch.yaml');
    writeFileSync(file, `dispatch:
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
`);
    return sidecarRow(downstreamPort, { SIDECAR_CONFIG: file });
  });
  await row('e', '(e) pod-sidecar relay, spool mode', () => sidecarRow(downstreamPort, { RELAY_MODE: 'spool', SPOOL_DEDUP_HEADER: 'none', SPOOL_MAX_BYTES: String(8 * 1024 ** 3) }));
  await row('f', '(f) reference: node:http + undici, bare', async () => {
    const nodeOptions = imageNodeOptions();
    const port = await freePort();
    const p = start(pin(TEST_CORE, [process.execPath, join(root, 'scripts', 'bench-reference-relay.cjs'), String(port), String(downstreamPort)]), { env: { PATH: process.env.PATH, NODE_OPTIONS: nodeOptions } });
    await waitHttp(`http://127.0.0.1:${port}/`);
    await run(port);
    const r = await run(port);
    const peakKiB = kib(p.pid, 'VmHWM');
    await stop(p);
    return { ...r, peakMiB: peakKiB / 1024 };
  });
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
const cells = [['setup', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'vs (a)', 'vs (b)', 'p99 vs (b)', 'vs (f)', 'idle RSS MiB', 'peak RSS MiB', 'cold start ms']];
for (const r of results) {
  if (r.note) {
    cells.push([r.label, `not measured: ${r.note}`, '', '', '', '', '', '', '', '', '', '']);
    continue;
  }
  cells.push([r.label, f(r.rps), f(r.p50, 2), f(r.p99, 2), String(r.errors), ratio(r, a), ratio(r, b), b && r.p99 ? `${(r.p99 / b.p99).toFixed(2)}×` : '–', ratio(r, ref), f(r.idleMiB, 1), f(r.peakMiB, 1), f(r.coldMs)]);
}
const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)));
const line = (c) => `| ${c.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`;
console.log(`\npod-sidecar bench — ${new Date().toISOString().slice(0, 10)}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, node ${process.version}, ` +
  `${WRK ? 'wrk' : 'autocannon'} ${CONNECTIONS} connections × ${DURATION} s, ${bodyBytes.length} B signed webhook, ` +
  `process under test ${TASKSET && twoCores ? `pinned to CPU ${TEST_CORE}` : 'not pinned'}\n`);
console.log(line(cells[0]));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const c of cells.slice(1)) console.log(line(c));
if (Number.isFinite(cacheColdMs)) {
  console.log(`\nWith the image's opt-in compile cache (NODE_COMPILE_CACHE=/app/.compile-cache), (c) took ${cacheColdMs.toFixed(0)} ms to start and idled at ${cacheIdleMiB.toFixed(1)} MiB.`);
}

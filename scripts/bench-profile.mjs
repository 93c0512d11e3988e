// npm run bench:profile — where a relayed request's CPU time goes, in the relay (c) and in
// the bare node:http + undici reference (f) side by side: both run under V8's sampling
// profiler while the same load goes to each in turn (the bench's webhook, wrk or
// autocannon, interleaved rounds); only samples inside each one's measured windows count,
// and each category's time is divided by the requests that process served.
//
//   npm run bench:profile -- [--duration 5] [--rounds 3]
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  arg,
  cleanUp,
  freePort,
  imageNodeOptions,
  load,
  pin,
  root,
  start,
  startDownstream,
  stop,
  TEST_CORE,
  waitHttp,
  work,
} from './bench-kit.mjs';

const DURATION = Number(arg('duration', '5'));
const ROUNDS = Number(arg('rounds', '3'));

/** The category of a profile frame, by where its code lives. */
function category({ functionName: fn, url }) {
  if (fn === '(idle)') return null;
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === 'writev' || fn === 'writeBuffer' || fn === 'writeLatin1String' || fn === 'writeUtf8String')
    return 'system calls: socket writes';
  if (fn === '(program)') return 'V8 and libuv (native)';
  if (/node_modules\/undici\//.test(url)) return 'undici';
  if (/node_modules\/prom-client\//.test(url)) return 'prom-client';
  if (/node_modules\//.test(url)) return 'other packages';
  if (/\/dist\/|bench-reference-relay/.test(url)) return 'own code (relay or reference script)';
  if (/^node:_http|^node:http/.test(url)) return 'node:http';
  if (/^node:(net|internal\/(streams|stream_base_commons|net))/.test(url)) return 'node streams and sockets';
  if (/wasm/.test(url) || /wasm/.test(fn)) return "undici's llhttp (wasm)";
  if (url.startsWith('node:')) return 'node, other';
  return 'native, other';
}

try {
  const downstreamPort = await startDownstream();
  const nodeOptions = imageNodeOptions();
  const setups = {};
  for (const key of ['c', 'f']) {
    const dir = join(work, `profile-${key}`);
    mkdirSync(dir);
    const [port, management] = [await freePort(), await freePort()];
    const program =
      key === 'c'
        ? [join(root, 'dist', 'main.js')]
        : [join(root, 'scripts', 'bench-reference-relay.cjs'), String(port), String(downstreamPort)];
    const startedAt = performance.now();
    const proc = start(pin(TEST_CORE, [process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200', ...program]), {
      env: {
        PATH: process.env.PATH,
        NODE_OPTIONS: nodeOptions,
        DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${downstreamPort}/webhook`,
        RELAY_PORT: String(port),
        MANAGEMENT_PORT: String(management),
        LISTEN_HOST: '127.0.0.1',
        SHARED_VOLUME_PATH: dir,
        LOG_LEVEL: 'warn',
      },
    });
    await waitHttp(key === 'c' ? `http://127.0.0.1:${management}/readyz` : `http://127.0.0.1:${port}/`);
    await load(port, { seconds: DURATION }); // warm-up, not counted
    setups[key] = { proc, port, dir, startedAt, windows: [], requests: 0 };
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [key, s] of Object.entries(setups)) {
      process.stderr.write(`bench:profile: round ${round}/${ROUNDS}, (${key})…\n`);
      const from = performance.now() - s.startedAt;
      const r = await load(s.port, { seconds: DURATION });
      s.windows.push([from, performance.now() - s.startedAt]);
      s.requests += r.rps * DURATION;
    }
  }
  // Both exit on SIGTERM, which writes their profiles.
  await Promise.all(Object.values(setups).map((s) => stop(s.proc)));

  const rows = {};
  for (const [key, s] of Object.entries(setups)) {
    const file = readdirSync(s.dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`(${key}) wrote no profile`);
    const profile = JSON.parse(readFileSync(join(s.dir, file), 'utf8'));
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    let at = 0; // ms since the profile began, close to the process's start
    const totals = {};
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] / 1000;
      if (!s.windows.some(([a, b]) => at >= a && at <= b)) continue;
      const cat = category(nodes.get(profile.samples[i]).callFrame);
      if (cat !== null) totals[cat] = (totals[cat] ?? 0) + (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i]);
    }
    for (const [cat, us] of Object.entries(totals)) (rows[cat] ??= {})[key] = us / s.requests;
    (rows['total CPU'] ??= {})[key] = Object.values(totals).reduce((x, y) => x + y, 0) / s.requests;
  }
  const table = Object.entries(rows).sort(([a, x], [b, y]) => (a === 'total CPU') - (b === 'total CPU') || (y.c ?? 0) - (x.c ?? 0));
  const width = Math.max(...table.map(([cat]) => cat.length));
  console.log(`\nµs of CPU per request (the process under test), over ${ROUNDS} interleaved rounds × ${DURATION} s each\n`);
  console.log(`| ${'where'.padEnd(width)} | (c) relay | (f) reference | (c) − (f) |`);
  console.log(`|${'-'.repeat(width + 2)}|-----------|---------------|-----------|`);
  for (const [cat, v] of table) {
    const [c, f] = [v.c ?? 0, v.f ?? 0];
    console.log(
      `| ${cat.padEnd(width)} | ${c.toFixed(1).padStart(9)} | ${f.toFixed(1).padStart(13)} | ${(c - f).toFixed(1).padStart(9)} |`,
    );
  }
} finally {
  await cleanUp();
}

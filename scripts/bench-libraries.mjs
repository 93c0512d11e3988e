// npm run bench:libraries — three hand-written parts of the sidecar against the well-kept
// library that does the same job (docs/adr/0006-libraries-or-hand-written.md):
//
//   (a) src/logging/json-logger.ts        vs pino: process start and require time, heap after
//                                            100k lines to /dev/null, ns per line
//   (b) src/relay/spool/delivery-id-index.ts (a Map in insertion order with a window and a
//       capacity) vs lru-cache with the same capacity and TTL: memory at 100k entries, ops/s
//   (c) src/common/atomic-write.ts        vs write-file-atomic: ms per write of a 200-byte
//                                            status file with fsync, and the mode under umask 077
//
// The libraries are not dependencies of the project; install them beside it first:
//
//   npm install --prefix /tmp/libbench pino lru-cache write-file-atomic
//   npm run bench:libraries -- [--lib-dir /tmp/libbench] [--runs 21] [--writes 300] [--dir .]
//
// The project's side is read from dist/ (the npm script builds it). Every measurement runs in
// a fresh child process (node --expose-gc), the contenders interleaved run by run so that a
// slow spell of a shared machine falls on all of them alike; medians are printed. Writes go
// to a fresh directory under --dir (default: the current one; tmpfs would measure nothing).
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const self = fileURLToPath(import.meta.url);

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const LIB_DIR = resolve(arg('lib-dir', process.env.LIBBENCH_DIR ?? '/tmp/libbench'));
const RUNS = Number(arg('runs', '21'));
const WRITES = Number(arg('writes', '300'));
const WRITE_DIR = resolve(arg('dir', process.cwd()));
const LINES = 100_000;
const ENTRIES = 100_000;
const MiB = 1024 * 1024;

const dist = (p) => join(root, 'dist', p);
function library(name) {
  try {
    return createRequire(join(LIB_DIR, 'package.json')).resolve(name);
  } catch {
    console.error(`${name} is not installed in ${LIB_DIR}: npm install --prefix ${LIB_DIR} pino lru-cache write-file-atomic`);
    process.exit(2);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');

/** Heap (V8 heap plus array buffers, where typed arrays live) after a full collection. */
function heap() {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

// --- the children ---------------------------------------------------------------------------

/** The sidecar's kind of line: a context and a few fields. */
const FIELDS = { destination: 'https://ci.example.com', rule: 'github', status: 503, retryInMs: 1500 };
const MESSAGE = 'delivery failed; will retry';

/**
 * A logger of each kind with a `line()` and a `flush()` that resolves once every line is
 * written: to stdout (the parent points it at /dev/null), or with `sink` to a function that
 * drops the line (the formatting alone).
 */
function makeLogger(which, require, sink) {
  if (which === 'json-logger') {
    const { JsonLogger } = require(dist('logging/json-logger.js'));
    const logger = new JsonLogger({ level: 'info', format: 'json' }, sink);
    return { line: () => logger.log({ msg: MESSAGE, ...FIELDS }, 'Spool'), flush: async () => undefined };
  }
  const pino = require(library('pino'));
  // The same line as the sidecar's: ISO time, the level's name, no pid or hostname.
  const options = {
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  // 'pino': its default destination (sonic-boom on fd 1, asynchronous, flushed at exit);
  // 'pino-sync': synchronous writes, as process.stdout.write is for a file or pipe on Linux.
  const logger = sink
    ? pino(options, { write: sink })
    : which === 'pino'
      ? pino(options)
      : pino(options, pino.destination({ dest: 1, sync: true }));
  const spool = logger.child({ context: 'Spool' });
  const stream = logger[pino.symbols.streamSym];
  // logger.flush() calls back before sonic-boom's last asynchronous write is done; its own
  // state says when nothing is left (a benchmark may read a dependency's internals).
  const idle = () => sink || (!stream._writing && stream._len === 0);
  const flush = async () => {
    while (!idle()) await new Promise((r) => setImmediate(r));
  };
  return { line: () => spool.info(FIELDS, MESSAGE), flush };
}

async function child(kind, which) {
  const require = createRequire(import.meta.url);
  if (kind === 'lines') {
    const before = heap();
    const logger = makeLogger(which, require);
    for (let i = 0; i < 10_000; i++) logger.line(); // warm up
    await logger.flush();
    const t0 = performance.now();
    for (let i = 0; i < LINES; i++) logger.line();
    await logger.flush();
    const ns = ((performance.now() - t0) * 1e6) / LINES;
    const heapAfter = heap() - before;
    // The formatting alone, into a sink that drops each line.
    const dropping = makeLogger(which, require, () => undefined);
    for (let i = 0; i < 10_000; i++) dropping.line();
    const t1 = performance.now();
    for (let i = 0; i < LINES; i++) dropping.line();
    const formatNs = ((performance.now() - t1) * 1e6) / LINES;
    return { ns, formatNs, heap: heapAfter };
  }
  if (kind === 'cache') {
    const ids = Array.from({ length: 3 * ENTRIES }, () => randomUUID());
    const events = Array.from({ length: 3 * ENTRIES }, () => randomUUID());
    let clock = Date.parse('2026-12-01T00:00:00Z');
    const WINDOW = 3_600_000;
    const beforeStructure = heap();
    let cache;
    if (which === 'delivery-id-index') {
      const { DeliveryIdIndex } = require(dist('relay/spool/delivery-id-index.js'));
      const index = new DeliveryIdIndex(WINDOW, ENTRIES);
      cache = { set: (k, v) => index.remember(k, v, clock), get: (k) => index.lookup(k, clock), size: () => index.size };
    } else {
      const { LRUCache } = require(library('lru-cache'));
      const lru = new LRUCache({ max: ENTRIES, ttl: WINDOW, perf: { now: () => clock } });
      cache = { set: (k, v) => lru.set(k, v), get: (k) => lru.get(k) ?? null, size: () => lru.size };
    }
    const empty = heap();
    for (let i = 0; i < ENTRIES; i++) {
      clock++;
      cache.set(ids[i], events[i]);
    }
    const full = heap();
    // Sets past the capacity (each evicts the oldest), then lookups: half hits, half misses.
    let t0 = performance.now();
    for (let i = ENTRIES; i < 3 * ENTRIES; i++) {
      clock++;
      cache.set(ids[i], events[i]);
    }
    const setsPerS = (2 * ENTRIES) / ((performance.now() - t0) / 1000);
    let hits = 0;
    t0 = performance.now();
    for (let round = 0; round < 5; round++) {
      for (let i = ENTRIES; i < 3 * ENTRIES; i++) if (cache.get(ids[i]) !== null) hits++;
    }
    const getsPerS = (10 * ENTRIES) / ((performance.now() - t0) / 1000);
    if (cache.size() !== ENTRIES || hits !== 5 * ENTRIES) throw new Error(`${which}: size ${cache.size()}, hits ${hits}`);
    // `constructed`: what the structure holds before any entry (its preallocation).
    return { constructed: empty - beforeStructure, atCapacity: full - empty, setsPerS, getsPerS };
  }
  if (kind === 'write') {
    const dir = process.argv[process.argv.indexOf('--into') + 1];
    const count = Number(process.argv[process.argv.indexOf('--writes') + 1]);
    const write =
      which === 'atomic-write'
        ? require(dist('common/atomic-write.js')).writeFileAtomic
        : (
            (wfa) => (path, data, mode) =>
              wfa(path, data, { mode, fsync: true })
          )(require(library('write-file-atomic')));
    const file = join(dir, `health-status-${which}.txt`);
    const data = `status=success\ncheckedAt=${new Date().toISOString()}\n`.padEnd(199, '#') + '\n'; // 200 bytes
    for (let i = 0; i < 10; i++) await write(file, data, 0o644); // warm up
    const times = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await write(file, data, 0o644);
      times.push(performance.now() - t0);
    }
    // The mode asked for, whatever the umask; and a file that was 0600 before.
    const umask = process.umask(0o077);
    const fresh = join(dir, `fresh-${which}.txt`);
    await write(fresh, data, 0o644);
    process.umask(umask);
    return {
      ms: median(times),
      p99: [...times].sort((a, b) => a - b)[Math.floor(times.length * 0.99)],
      modeUnderUmask077: (statSync(fresh).mode & 0o777).toString(8),
    };
  }
  throw new Error(`unknown child ${kind}`);
}

if (process.argv.includes('--child')) {
  const i = process.argv.indexOf('--child');
  const result = await child(process.argv[i + 1], process.argv[i + 2]);
  process.stderr.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

// --- the parent -----------------------------------------------------------------------------

function runChild(args, options = {}) {
  const r = spawnSync(process.execPath, ['--expose-gc', self, '--child', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'], // stdout to /dev/null
    encoding: 'utf8',
    ...options,
  });
  const line = r.stderr.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`child ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(line.slice(7));
}

/**
 * One process that requires the logger and logs one line: wall time from spawn to exit, and
 * the require alone. Each first requires a file of the project with no imports, so that the
 * module loader's own first-use cost falls outside the timed require, as in the sidecar.
 */
function startOnce(which) {
  const warm = `require(${JSON.stringify(dist('common/http-client.js'))});`;
  // The time is taken before process.stderr is touched: its first use builds the stream.
  const timed = (expr) => `const t=performance.now(); ${expr}; const ms=performance.now()-t; process.stderr.write('REQUIRE '+ms+'\\n');`;
  const code = {
    none: `${timed('')} process.stdout.write('{"msg":"started"}\\n');`,
    'json-logger': `${timed(`const {JsonLogger}=require(${JSON.stringify(dist('logging/json-logger.js'))})`)} new JsonLogger({level:'info',format:'json'}).log({msg:'started'},'Main');`,
    pino: `${timed(`const pino=require(${JSON.stringify(which === 'pino' ? library('pino') : '')})`)} pino({base:undefined,timestamp:pino.stdTimeFunctions.isoTime,formatters:{level:(l)=>({level:l})}}).child({context:'Main'}).info('started');`,
  }[which];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['-e', warm + code], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`start ${which} failed:\n${r.stderr}`);
  return { wall, require: Number(/REQUIRE (\S+)/.exec(r.stderr)[1]) };
}

function table(head, rows) {
  const out = [head, head.map(() => '---'), ...rows];
  console.log(out.map((r) => `| ${r.join(' | ')} |`).join('\n'));
}

for (const name of ['pino', 'lru-cache', 'write-file-atomic']) library(name);
try {
  statSync(dist('logging/json-logger.js'));
} catch {
  console.error('dist/ is missing: npm run build first (npm run bench:libraries does)');
  process.exit(2);
}
const version = (name) => JSON.parse(readFileSync(join(LIB_DIR, 'node_modules', name, 'package.json'), 'utf8')).version;
console.log(
  `Node ${process.version}; pino ${version('pino')}, lru-cache ${version('lru-cache')}, write-file-atomic ${version('write-file-atomic')}; ${RUNS} runs each, medians\n`,
);

// (a) the logger
const LOGGERS = ['json-logger', 'pino', 'pino-sync'];
const starts = { none: [], 'json-logger': [], pino: [] };
const lines = Object.fromEntries(LOGGERS.map((l) => [l, []]));
for (let run = 0; run < RUNS; run++) {
  for (const which of Object.keys(starts)) starts[which].push(startOnce(which));
  for (const which of LOGGERS) lines[which].push(runChild(['lines', which]));
}
const startOf = (w) => median(starts[w].map((s) => s.wall));
console.log('(a) logging');
table(
  [
    'logger',
    'process start to exit, ms',
    'over bare node, ms',
    'require, ms',
    `heap after ${LINES / 1000}k lines, MiB`,
    'ns per line to /dev/null',
    'ns per line, formatting only',
  ],
  LOGGERS.map((w) => {
    const s = w === 'pino-sync' ? null : w;
    return [
      w === 'json-logger' ? 'JsonLogger (hand-written)' : w === 'pino' ? 'pino (default destination, async)' : 'pino (sync destination)',
      s ? fmt(startOf(s)) : '(as pino)',
      s ? fmt(startOf(s) - startOf('none')) : '',
      s ? fmt(median(starts[s].map((x) => x.require)), 2) : '',
      fmt(median(lines[w].map((x) => x.heap)) / MiB, 2),
      fmt(median(lines[w].map((x) => x.ns)), 0),
      w === 'pino-sync' ? '(as pino)' : fmt(median(lines[w].map((x) => x.formatNs)), 0),
    ];
  }),
);
console.log(`bare node: ${fmt(startOf('none'))} ms\n`);

// (b) the cache
const CACHES = ['delivery-id-index', 'lru-cache'];
const caches = Object.fromEntries(CACHES.map((c) => [c, []]));
for (let run = 0; run < Math.min(RUNS, 7); run++) for (const which of CACHES) caches[which].push(runChild(['cache', which]));
console.log(`(b) ${ENTRIES / 1000}k delivery ids with a 1 h window (keys and values are the same strings for both, not counted)`);
table(
  ['structure', 'empty, MiB', `${ENTRIES / 1000}k entries, MiB`, 'sets/s (evicting)', 'lookups/s'],
  CACHES.map((w) => [
    w === 'delivery-id-index' ? 'DeliveryIdIndex (Map, hand-written)' : 'lru-cache (max, ttl)',
    fmt(median(caches[w].map((x) => x.constructed)) / MiB, 2),
    fmt(median(caches[w].map((x) => x.atCapacity)) / MiB, 2),
    `${fmt(median(caches[w].map((x) => x.setsPerS)) / 1e6, 2)} M`,
    `${fmt(median(caches[w].map((x) => x.getsPerS)) / 1e6, 2)} M`,
  ]),
);
console.log();

// (c) the atomic write
const WRITERS = ['atomic-write', 'write-file-atomic'];
const dir = mkdtempSync(join(WRITE_DIR, '.bench-libraries-'));
const writes = Object.fromEntries(WRITERS.map((w) => [w, []]));
try {
  const rounds = 5;
  for (let run = 0; run < rounds; run++) {
    for (const which of WRITERS)
      writes[which].push(runChild(['write', which, '--into', dir, '--writes', String(Math.ceil(WRITES / rounds))]));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`(c) ${WRITES} writes of a 200-byte file with fsync, in ${dir.replace(/\/[^/]*$/, '')}`);
table(
  ['writer', 'ms per write (median)', 'p99, ms', 'mode asked 644, umask 077'],
  WRITERS.map((w) => [
    w === 'atomic-write' ? 'writeFileAtomic (hand-written)' : 'write-file-atomic',
    fmt(median(writes[w].map((x) => x.ms)), 2),
    fmt(median(writes[w].map((x) => x.p99)), 2),
    writes[w][0].modeUnderUmask077,
  ]),
);

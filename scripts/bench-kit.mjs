// Shared pieces of `npm run bench` and `npm run bench:soak`: the signed webhook, the
// downstream (nginx or Node), the nginx reverse proxy, the sidecar as the image runs it,
// and the load generator (wrk or autocannon), with CPU pinning where taskset exists.
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
export const CONNECTIONS = Number(arg('connections', '50'));
export const work = mkdtempSync(join(tmpdir(), 'pod-sidecar-bench-'));
export const procs = [];

export const which = (cmd) => {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin'])) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
};
export const NGINX = process.env.BENCH_NO_NGINX ? null : which('nginx');
export const WRK = process.env.BENCH_NO_WRK ? null : which('wrk');
export const TASKSET = which('taskset');
export const twoCores = cpus().length >= 2;
/** The process under test gets the last core; load generator and downstream share the first. */
export const pin = (core, argv) => (TASKSET && twoCores ? [TASKSET, '-c', String(core), ...argv] : argv);
export const TEST_CORE = cpus().length - 1;

// --- the webhook: 8 KB of JSON, signed as GitHub signs it -------------------------------
const SECRET = 'bench-secret';
/** The secret the webhook is signed with, for the row that verifies it (WEBHOOK_SECRET). */
export const BENCH_SECRET = SECRET;
const payload = { action: 'synchronize', number: 1347, repository: { full_name: 'octo-org/pod-sidecar' }, commits: [] };
for (let i = 0; JSON.stringify(payload).length < 8000; i++) {
  payload.commits.push({
    id: createHmac('sha1', String(i)).digest('hex'),
    message: `Commit ${i}: tune the relay ✓`,
    author: { name: 'Zoë', email: 'zoe@example.com' },
  });
}
export const bodyFile = join(work, 'body.json');
writeFileSync(bodyFile, JSON.stringify(payload));
export const bodyBytes = readFileSync(bodyFile);
const signature = `sha256=${createHmac('sha256', SECRET).update(bodyBytes).digest('hex')}`;
export const headers = {
  'Content-Type': 'application/json',
  'User-Agent': 'GitHub-Hookshot/bench',
  'X-GitHub-Event': 'pull_request',
  'X-GitHub-Delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
  'X-Hub-Signature-256': signature,
  'X-Environment': 'dev',
};

// --- helpers ------------------------------------------------------------------------------
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function start(argv, opts = {}) {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  let err = '';
  p.stderr?.on('data', (d) => (err += d));
  p.errText = () => err;
  procs.push(p);
  return p;
}

export async function stop(p) {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  await new Promise((r) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      r();
    }, 5000);
    p.once('exit', () => {
      clearTimeout(t);
      r();
    });
  });
}

export async function waitHttp(url, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status < 500) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const kib = (pid, field) => {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return NaN;
  }
};

/**
 * CPU seconds (user + system) a process and its children have used so far, from /proc:
 * what a request costs the process under test, whatever else the shared machine is doing.
 */
export function cpuSeconds(pid) {
  try {
    const ticks = (p) => {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(fields[11]) + Number(fields[12]); // utime, stime
    };
    // nginx's worker is the master's child; the relays have none.
    const children = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(pid);
        } catch {
          return false;
        }
      });
    return [pid, ...children].reduce((sum, p) => sum + ticks(p), 0) / 100; // USER_HZ
  } catch {
    return NaN;
  }
}

// --- downstream and nginx proxy -----------------------------------------------------------
export function nginxConf(name, port, location) {
  const dir = join(work, name);
  execFileSync('mkdir', ['-p', dir]);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  client_max_body_size 32m;
  ${location.upstream ?? ''}
  server {
    listen 127.0.0.1:${port};
    location / { ${location.body} }
  }
}
`,
  );
  return conf;
}

export async function startDownstream() {
  const port = await freePort();
  if (NGINX) {
    const conf = nginxConf('downstream', port, { body: 'client_body_buffer_size 64k; return 200 \'{"ok":true}\';' });
    start(pin(0, [NGINX, '-c', conf, '-p', work]));
  } else {
    start(
      pin(0, [
        process.execPath,
        '-e',
        `require('http').createServer((q,r)=>{q.resume();q.on('end',()=>r.end('{"ok":true}'))}).listen(${port},'127.0.0.1')`,
      ]),
    );
  }
  await waitHttp(`http://127.0.0.1:${port}/`);
  return port;
}

export async function startNginxProxy(downstreamPort) {
  const port = await freePort();
  const conf = nginxConf('proxy', port, {
    upstream: `upstream downstream { server 127.0.0.1:${downstreamPort}; keepalive 64; }`,
    body: 'proxy_pass http://downstream; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; client_body_buffer_size 64k;',
  });
  const p = start(pin(TEST_CORE, [NGINX, '-c', conf, '-p', work]));
  await waitHttp(`http://127.0.0.1:${port}/`);
  return { port, proc: p };
}

/**
 * The image's NODE_OPTIONS, with the old-space share turned into what it comes to under the
 * example manifests' 256 Mi limit: this machine has no cgroup limit, so 50 % of its RAM
 * would let garbage pile up far past what a pod would ever hold.
 */
export function imageNodeOptions() {
  const nodeOptions = (/NODE_OPTIONS="([^"]*)"/.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))?.[1] ?? '').replace(
    /--max-old-space-size-percentage=(\d+)/,
    (_, pct) => `--max-old-space-size=${Math.round((256 * Number(pct)) / 100)}`,
  );
  if (!nodeOptions) throw new Error("no NODE_OPTIONS found in the Dockerfile: the bench would not measure the image's settings");
  return nodeOptions;
}

/** The image's compile cache (scripts/warm-compile-cache.cjs), made once per run. */
let compileCache = null;
function imageCompileCache() {
  if (compileCache === null) {
    compileCache = join(work, 'compile-cache');
    execFileSync(process.execPath, [join(root, 'scripts', 'warm-compile-cache.cjs'), join(root, 'dist')], {
      env: { ...process.env, NODE_COMPILE_CACHE: compileCache },
      stdio: 'ignore',
    });
  }
  return compileCache;
}

/**
 * The sidecar as the image runs it (same NODE_OPTIONS as the Dockerfile; with
 * `compileCache`, the image's opt-in compile cache too), pinned to its core.
 */
export async function startSidecar(downstreamPort, extraEnv = {}, { compileCache = false } = {}) {
  const [relay, management] = [await freePort(), await freePort()];
  const nodeOptions = imageNodeOptions();
  const shared = mkdtempSync(join(work, 'shared-'));
  const cache = compileCache ? { NODE_COMPILE_CACHE: imageCompileCache() } : {};
  const t0 = performance.now();
  const p = start(pin(TEST_CORE, [process.execPath, join(root, 'dist', 'main.js')]), {
    env: {
      PATH: process.env.PATH,
      NODE_OPTIONS: nodeOptions,
      ...cache,
      DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${downstreamPort}/webhook`,
      RELAY_PORT: String(relay),
      MANAGEMENT_PORT: String(management),
      LISTEN_HOST: '127.0.0.1',
      SHARED_VOLUME_PATH: shared,
      LOG_LEVEL: 'warn',
      ...extraEnv,
    },
  });
  await waitHttp(`http://127.0.0.1:${management}/readyz`).catch((e) => {
    throw new Error(`${e.message}\n${p.errText()}`);
  });
  const coldMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 1000));
  return { port: relay, management, proc: p, coldMs, idleKiB: kib(p.pid, 'VmRSS') };
}

// --- load ---------------------------------------------------------------------------------
/**
 * `uniqueIds`: every request with its own X-GitHub-Delivery (a run-wide prefix and a
 * counter), as distinct webhooks are; otherwise every request carries the same one.
 */
export async function load(port, { path = '/github', seconds = 10, connections = CONNECTIONS, uniqueIds = false } = {}) {
  const prefix = `${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  if (WRK) {
    const lua = join(work, uniqueIds ? 'post-unique.lua' : 'post.lua');
    writeFileSync(
      lua,
      `wrk.method = "POST"
local f = io.open("${bodyFile}", "rb"); wrk.body = f:read("*a"); f:close()
${Object.entries(headers)
  .map(([k, v]) => `wrk.headers["${k}"] = "${v}"`)
  .join('\n')}
${
  uniqueIds
    ? `local n = 0
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = "${prefix}-" .. n
  return wrk.format()
end
`
    : ''
}`,
    );
    const out = execFileSync(
      pin(0, [WRK])[0],
      [...pin(0, [WRK]).slice(1), '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', lua, `http://127.0.0.1:${port}${path}`],
      { encoding: 'utf8' },
    );
    const ms = (label) => {
      const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
      if (!m) return NaN;
      return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
    };
    const num = (re) => Number(re.exec(out)?.[1] ?? 0);
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = num(/Non-2xx or 3xx responses: (\d+)/) + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
    return { rps: num(/Requests\/sec:\s+([\d.]+)/), p50: ms('50%'), p99: ms('99%'), errors };
  }
  const { default: autocannon } = await import('autocannon');
  let n = 0;
  const unique = uniqueIds
    ? { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'X-GitHub-Delivery': `${prefix}-${++n}` } }) }] }
    : {};
  const r = await autocannon({
    url: `http://127.0.0.1:${port}${path}`,
    method: 'POST',
    headers,
    body: bodyBytes,
    connections,
    duration: seconds,
    ...unique,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.non2xx + r.errors + r.timeouts };
}

/** Stops every process started here and removes the scratch directory. */
export async function cleanUp() {
  await Promise.all(procs.map(stop));
  rmSync(work, { recursive: true, force: true });
}

/** A redis-server (Debian's) on a free port, no persistence, pinned beside the load generator. */
export async function startRedis() {
  const bin = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((p) => existsSync(p)) ?? which('redis-server');
  if (!bin) throw new Error('redis-server not installed (scripts/install-test-peers.sh)');
  const port = await freePort();
  const dir = mkdtempSync(join(work, 'redis-'));
  start(pin(0, [bin, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no']));
  const deadline = performance.now() + 10_000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return { port, url: `redis://127.0.0.1:${port}` };
    if (performance.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

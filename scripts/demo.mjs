// Local demo, no cluster needed: a smee-compatible channel server (the test fixture), the
// real npm smee-client, a downstream that prints what it gets, and the built sidecar.
// Sends a signed sample webhook and shows the health check turning green and the event
// arriving. Ctrl-C stops everything; `--once` stops by itself after the show (CI uses it).
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SmeeChannelServer } from '../test/fixtures/smee-channel-server.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const once = process.argv.includes('--once');
const SECRET = 'demo-webhook-secret';
const children = [];
const shared = mkdtempSync(join(tmpdir(), 'pod-sidecar-demo-'));
const say = (who, text) => process.stdout.write(`${`[${who}]`.padEnd(14)} ${text}\n`);

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(name, args, env = {}) {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.setEncoding('utf8').on('data', (s) => {
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const l of lines) if (l.trim()) say(name, l);
    });
  }
  children.push(child);
  return child;
}

async function until(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const statusFile = join(shared, 'health-status.txt');
const readStatus = () => {
  try {
    return readFileSync(statusFile, 'utf8');
  } catch {
    return '';
  }
};

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  say('demo', 'stopping everything it started');
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  await channel.close();
  downstream.closeAllConnections();
  downstream.close();
  rmSync(shared, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

// 1. the smee channel server
const channel = new SmeeChannelServer({ keepAliveMs: 10_000 });
await channel.listen();
const channelUrl = channel.channelUrl('pod-sidecar-demo');
say('channel', `smee-compatible channel at ${channelUrl}`);

// 2. the downstream service
let delivered = 0;
const downstream = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const expected = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
    const sig = req.headers['x-hub-signature-256'];
    say(
      'downstream',
      `${req.method} ${req.url} event=${req.headers['x-github-event']} bytes=${body.length} signature=${sig === expected ? 'valid' : 'INVALID'}`,
    );
    say('downstream', `body: ${body.toString('utf8').slice(0, 120)}`);
    delivered++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
const downstreamPort = await freePort();
await new Promise((r) => downstream.listen(downstreamPort, '127.0.0.1', r));
say('downstream', `listening on http://127.0.0.1:${downstreamPort}/webhook`);

// 3. the sidecar, as the container runs it
const [relayPort, managementPort] = [await freePort(), await freePort()];
run('sidecar', ['dist/main.js'], {
  DOWNSTREAM_SERVICE_URL: `http://127.0.0.1:${downstreamPort}/webhook`,
  SMEE_CHANNEL_URL: channelUrl,
  HEALTH_CHECK_INTERVAL_SECONDS: '5',
  HEALTH_CHECK_TIMEOUT_SECONDS: '3',
  SHARED_VOLUME_PATH: shared,
  RELAY_PORT: String(relayPort),
  MANAGEMENT_PORT: String(managementPort),
  LISTEN_HOST: '127.0.0.1',
  LOG_FORMAT: 'pretty',
});

// 4. the real smee client, forwarding the channel to the sidecar's relay port
run('smee-client', ['node_modules/smee-client/bin/smee.js', '-u', channelUrl, '-t', `http://127.0.0.1:${relayPort}/`], {
  NO_PROXY: '127.0.0.1,localhost',
});

try {
  await until('the smee client to subscribe', () => channel.subscriberCount() > 0);
  say('demo', 'waiting for an end-to-end health check to come back through the client…');
  await until('status=success', () => readStatus().startsWith('status=success'), 30_000);
  say('demo', `status file ${statusFile}:`);
  for (const line of readStatus().trim().split('\n')) say('demo', `  ${line}`);
  const probe = execFileSync('sh', [join(shared, 'check-smee-health.sh')], { encoding: 'utf8' }).trim();
  say('demo', `check-smee-health.sh → exit 0: ${probe}`);

  const payload = JSON.stringify({ action: 'opened', number: 42, pull_request: { title: 'Try pod-sidecar ✓' } });
  const signature = `sha256=${createHmac('sha256', SECRET).update(payload).digest('hex')}`;
  say('demo', `POST a signed pull_request webhook to the channel (X-Hub-Signature-256: ${signature.slice(0, 14)}…)`);
  const answer = await fetch(channelUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'pull_request',
      'x-github-delivery': 'demo-1',
      'x-hub-signature-256': signature,
    },
    body: payload,
  });
  say('channel', `answered ${answer.status}`);
  await until('the webhook to arrive downstream', () => delivered > 0);

  const metrics = await (await fetch(`http://127.0.0.1:${managementPort}/metrics`)).text();
  say('demo', 'metrics on the management port:');
  for (const l of metrics
    .split('\n')
    .filter((l) => /^(smee_events_relayed_total|health_check|sidecar_health_checks_total\{result="success"\})/.test(l)))
    say('demo', `  ${l}`);
  say('demo', `management: http://127.0.0.1:${managementPort}/status  /readyz  /healthz  /metrics`);
  if (once) await stop(0);
  say('demo', 'running; Ctrl-C stops everything');
} catch (e) {
  say('demo', `failed: ${e.message}`);
  await stop(1);
}

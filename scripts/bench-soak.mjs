// npm run bench:soak — steady load on the relay for a while (10 minutes by default) that
// samples the sidecar's RSS, V8 heap and active handles over time, to show they do not
// grow. Prints one row per sample and a verdict comparing the last third with the first.
//
//   npm run bench:soak -- [--minutes 10] [--every 30] [--connections 20]
import { arg, cleanUp, kib, load, startDownstream, startSidecar } from './bench-kit.mjs';

const MINUTES = Number(arg('minutes', '10'));
const EVERY = Number(arg('every', '30'));
const CONNS = Number(arg('connections', '20'));

const samples = [];
try {
  const downstreamPort = await startDownstream();
  const s = await startSidecar(downstreamPort, { ENABLE_PPROF: 'true' });
  const runtime = async () => (await fetch(`http://127.0.0.1:${s.management}/debug/runtime`)).json();
  process.stderr.write(`bench:soak: ${MINUTES} min of load, a sample every ${EVERY} s\n`);
  const end = Date.now() + MINUTES * 60_000;
  let requests = 0;
  while (Date.now() < end) {
    const seconds = Math.max(1, Math.min(EVERY, Math.round((end - Date.now()) / 1000)));
    const r = await load(s.port, { seconds, connections: CONNS });
    requests += r.rps * seconds;
    await new Promise((r) => setTimeout(r, 2000)); // let the last requests settle: handles and heap at rest
    const rt = await runtime();
    const handles = Object.values(rt.activeResources).reduce((a, b) => a + b, 0);
    samples.push({
      t: samples.length * EVERY + seconds,
      rps: r.rps,
      p99: r.p99,
      errors: r.errors,
      rssMiB: kib(s.proc.pid, 'VmRSS') / 1024,
      heapMiB: rt.memory.heapUsed / 1048576,
      handles,
    });
    const x = samples.at(-1);
    console.log(
      `t=${String(x.t).padStart(4)} s  ${x.rps.toFixed(0).padStart(6)} req/s  p99 ${x.p99.toFixed(1).padStart(6)} ms  errors ${x.errors}  RSS ${x.rssMiB.toFixed(1)} MiB  heap ${x.heapMiB.toFixed(1)} MiB  handles ${x.handles}`,
    );
  }
  const third = Math.max(1, Math.floor(samples.length / 3));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const first = samples.slice(0, third);
  const last = samples.slice(-third);
  const growth = (key) => median(last.map((x) => x[key])) / median(first.map((x) => x[key])) - 1;
  const verdict = (key, limit) => `${key} ${(growth(key) * 100).toFixed(1)}% (${growth(key) <= limit ? 'ok' : 'GROWING'})`;
  console.log(
    `\n${Math.round(requests)} requests; last third vs first third: ${verdict('rssMiB', 0.1)}, ${verdict('heapMiB', 0.1)}, ${verdict('handles', 0.1)}`,
  );
} finally {
  await cleanUp();
}

// Compares the two crash-safe ways of storing an event that the spool could use, on the
// disk it runs on: one file per event (temp file, fdatasync, rename, directory fsync, the
// directory fsyncs of concurrent events shared) against an append-only log whose
// concurrent appends share one writev + fdatasync (group commit). Prints events/s and
// the p99 time to "on disk" for 1, 16 and 64 concurrent writers.
//
//   node scripts/spool-format-bench.mjs [dir] [events]
//
// dir defaults to a fresh directory under the current one (put it on the volume you
// mean to use: tmpfs would measure nothing).
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

const base = process.argv[2] ?? join(process.cwd(), `.spool-format-bench-${process.pid}`);
const EVENTS = Number(process.argv[3] ?? 2000);
const body = randomBytes(4096);

async function filePerEvent(dir, writers) {
  const dirHandle = await open(dir, 'r');
  let waiting = [];
  let syncing = false;
  const syncDir = () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      if (syncing) return;
      syncing = true;
      void (async () => {
        while (waiting.length > 0) {
          const batch = waiting;
          waiting = [];
          await dirHandle.sync();
          for (const r of batch) r();
        }
        syncing = false;
      })();
    });
  const store = async (i) => {
    const tmp = join(dir, `.${i}.tmp`);
    const h = await open(tmp, 'wx');
    await h.write(body);
    await h.datasync();
    await h.close();
    await rename(tmp, join(dir, `${i}.event`));
    await syncDir();
  };
  const result = await run(store, writers);
  await dirHandle.close();
  return result;
}

async function groupCommitLog(dir, writers) {
  const log = await open(join(dir, 'segment.log'), 'w');
  let queue = [];
  let writing = false;
  let position = 0;
  let batches = 0;
  const store = () =>
    new Promise((resolve) => {
      queue.push(resolve);
      if (writing) return;
      writing = true;
      void (async () => {
        while (queue.length > 0) {
          const batch = queue;
          queue = [];
          batches++;
          const { bytesWritten } = await log.writev(
            batch.map(() => body),
            position,
          );
          position += bytesWritten;
          await log.datasync();
          for (const r of batch) r();
        }
        writing = false;
      })();
    });
  const result = await run(store, writers);
  await log.close();
  return { ...result, syncs: batches };
}

async function run(store, writers) {
  let next = 0;
  const latencies = [];
  const writer = async () => {
    while (next < EVENTS) {
      const i = next++;
      const t = performance.now();
      await store(i);
      latencies.push(performance.now() - t);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: writers }, writer));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { eventsPerSecond: Math.round(EVENTS / seconds), p99ms: Number(latencies[Math.floor(latencies.length * 0.99)].toFixed(2)) };
}

for (const writers of [1, 16, 64]) {
  for (const [name, fn] of [
    ['file per event', filePerEvent],
    ['group-commit log', groupCommitLog],
  ]) {
    const dir = join(base, `${name.replace(/\W+/g, '-')}-${writers}`);
    await mkdir(dir, { recursive: true });
    const r = await fn(dir, writers);
    console.log(
      `${String(writers).padStart(2)} writers  ${name.padEnd(16)}  ${String(r.eventsPerSecond).padStart(6)} events/s  p99 ${String(r.p99ms).padStart(6)} ms${r.syncs ? `  (${r.syncs} syncs for ${EVENTS} events)` : ''}`,
    );
    await rm(dir, { recursive: true, force: true });
  }
}
await rm(base, { recursive: true, force: true });

import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, cpSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reconcile } from './recovery';
import { COMPACT_NORMALLY, COMPACT_UNDER_PRESSURE, RecordLocation, SegmentLog } from './segment-log';
import { encodeAck, encodeRecord, EventMeta, recordBytes } from './spool-record';

function meta(seq: number): EventMeta {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    seq,
    method: 'POST',
    url: `/e/${seq}`,
    headers: ['Content-Type', 'application/octet-stream'],
    client: '127.0.0.1',
    receivedAt: seq,
    queuedAt: seq,
    route: 'default',
    deliveryId: null,
  };
}

const bodyOf = (seq: number) => Buffer.concat([Buffer.from(`event ${seq}:`), randomBytes(64)]);

describe('SegmentLog', () => {
  let dir: string;
  const logs: SegmentLog[] = [];
  /** A log over `path`; left open at the end of a test, as a crashed process leaves its files. */
  const logAt = (path = dir, rollBytes = 1 << 20) => {
    const log = new SegmentLog(path, rollBytes);
    logs.push(log);
    return log;
  };
  const files = (path = dir) => readdirSync(path).sort();

  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'segment-log-')), 'segments');
  });
  afterEach(async () => {
    for (const log of logs.splice(0)) await log.close().catch(() => undefined);
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  it('group-commits concurrent appends: one sync for many, and nobody is answered before the sync of their batch', async () => {
    const log = logAt();
    await log.recover();
    // The real disk syncs, observed where they happen (every FileHandle's datasync), not
    // a hook beside them: how many appends had been answered when each one completed.
    const probe = await open(join(dir, '..', 'probe'), 'w');
    const fileHandle = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const datasync = fileHandle.datasync;
    const answered: number[] = [];
    const answeredAtSyncDone: number[] = [];
    const spy = jest.spyOn(fileHandle, 'datasync').mockImplementation(async function (this: unknown) {
      await datasync.call(this);
      answeredAtSyncDone.push(answered.length);
    });
    try {
      const bodies = Array.from({ length: 100 }, (_, i) => bodyOf(i + 1));
      await Promise.all(bodies.map((b, i) => log.append(encodeRecord(meta(i + 1), b), i + 1).then(() => answered.push(i + 1))));
      // The first record alone, then the 99 that queued behind it: each batch's sync had
      // completed before any of its appends was answered.
      expect(answeredAtSyncDone).toEqual([0, 1]);
      expect(answered).toEqual(bodies.map((_, i) => i + 1));
    } finally {
      spy.mockRestore();
    }
  });

  it('reads records back byte for byte, and a restart finds every one in order', async () => {
    const log = logAt();
    await log.recover();
    const bodies = Array.from({ length: 20 }, (_, i) => bodyOf(i + 1));
    const locs = await Promise.all(bodies.map((b, i) => log.append(encodeRecord(meta(i + 1), b), i + 1)));
    for (const [i, loc] of locs.entries()) expect((await log.read(loc)).body.equals(bodies[i])).toBe(true);

    const again = logAt();
    const { records } = await again.recover();
    expect(records.map((r) => r.meta.seq)).toEqual(bodies.map((_, i) => i + 1));
    for (const [i, r] of records.entries()) expect((await again.read(r.location)).body.equals(bodies[i])).toBe(true);
  });

  it('does not bring back finished records, and deletes a sealed segment once nothing in it is live', async () => {
    const log = logAt(dir, 1); // every batch fills a segment
    await log.recover();
    const locs: RecordLocation[] = [];
    for (let seq = 1; seq <= 3; seq++) locs.push(await log.append(encodeRecord(meta(seq), bodyOf(seq)), seq));
    expect(files()).toEqual(['000000000001.log', '000000000002.log', '000000000003.log']);
    log.finish(locs[0]);
    log.finish(locs[2]);
    await log.close();
    expect(files()).toEqual(['000000000002.log']);

    const { records } = await logAt().recover();
    expect(records.map((r) => r.meta.seq)).toEqual([2]);
  });

  it('reads a segment through a window smaller than its records at recovery, byte for byte', async () => {
    const log = logAt();
    await log.recover();
    const bodies = [10, 5000, 3, 300, 70_000, 1].map((n, i) => Buffer.concat([Buffer.from(`${i}:`), randomBytes(n)]));
    await Promise.all(bodies.map((b, i) => log.append(encodeRecord(meta(i + 1), b), i + 1)));
    appendFileSync(join(dir, '000000000001.log'), recordBytes(meta(99), bodyOf(99)).subarray(0, 150));

    const again = new SegmentLog(dir, 1 << 20, 1000, 256);
    logs.push(again);
    const { records, report } = await again.recover();
    expect(records.map((r) => r.meta.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(report.damagedBytes).toBe(150);
    for (const [i, r] of records.entries()) expect((await again.read(r.location)).body.equals(bodies[i])).toBe(true);
  });

  it('keeps finished records out after a restart while their segment is still there, and reports the highest seq seen', async () => {
    const log = logAt();
    await log.recover();
    const locs = await Promise.all([1, 2, 3, 4].map((seq) => log.append(encodeRecord(meta(seq), bodyOf(seq)), seq)));
    log.finish(locs[1]);
    log.finish(locs[3]);
    await log.close();
    expect(files()).toEqual(['000000000001.ack', '000000000001.log']);
    const { records, report } = await logAt().recover();
    expect(records.map((r) => r.meta.seq)).toEqual([1, 3]);
    expect(report.maxSeq).toBe(4);
  });

  it('a crash at any byte of a write: recovery keeps the whole records, cuts the torn one off, writes on in a new segment', async () => {
    const log = logAt();
    await log.recover();
    await Promise.all([1, 2, 3].map((seq) => log.append(encodeRecord(meta(seq), bodyOf(seq)), seq)));
    const segment = join(dir, '000000000001.log');
    const intact = statSync(segment).size;
    const torn = recordBytes(meta(4), bodyOf(4));
    for (let cut = 1; cut < torn.length; cut++) {
      const copy = join(mkdtempSync(join(tmpdir(), 'segment-log-crash-')), 'segments');
      cpSync(dir, copy, { recursive: true });
      appendFileSync(join(copy, '000000000001.log'), torn.subarray(0, cut));

      const recovered = logAt(copy);
      const { records, report } = await recovered.recover();
      expect(records.map((r) => r.meta.seq)).toEqual([1, 2, 3]);
      expect(report.damagedBytes).toBe(cut);
      expect(statSync(join(copy, '000000000001.log')).size).toBe(intact);
      await recovered.append(encodeRecord(meta(5), bodyOf(5)), 5);
      await recovered.close();
      expect(files(copy)).toEqual(['000000000001.log', '000000000002.log']);
      rmSync(join(copy, '..'), { recursive: true, force: true });
    }
  });

  it.each(['write', 'sync'] as const)(
    'refuses a batch whose %s fails, cuts it off so that it never comes back, and goes on in a new segment',
    async (failing) => {
      const log = logAt();
      await log.recover();
      await log.append(encodeRecord(meta(1), bodyOf(1)), 1);
      log.beforeStep = (step) => {
        if (step === failing) throw new Error('EIO: simulated');
      };
      await expect(log.append(encodeRecord(meta(2), bodyOf(2)), 2)).rejects.toThrow('EIO');
      log.beforeStep = null;
      await log.append(encodeRecord(meta(3), bodyOf(3)), 3);
      expect(files()).toEqual(['000000000001.log', '000000000002.log']);

      const { records, report } = await logAt().recover();
      expect(records.map((r) => r.meta.seq)).toEqual([1, 3]);
      expect(report.damagedBytes).toBe(0);
    },
  );

  it('ignores ack entries that are torn, damaged or name another record', async () => {
    const log = logAt();
    await log.recover();
    const [a, b] = await Promise.all([1, 2].map((seq) => log.append(encodeRecord(meta(seq), bodyOf(seq)), seq)));
    const damaged = encodeAck(b.offset, 2);
    damaged[3] ^= 0x04;
    writeFileSync(
      join(dir, '000000000001.ack'),
      Buffer.concat([
        encodeAck(a.offset, 7), // stale: another seq
        encodeAck(a.offset + 1, 1), // not where a record starts
        damaged,
        encodeAck(b.offset, 2).subarray(0, 10), // torn
      ]),
    );
    const { records } = await logAt().recover();
    expect(records.map((r) => r.meta.seq)).toEqual([1, 2]);
  });

  it('lets a current segment with nothing live go when space is short, and when closed', async () => {
    const log = logAt();
    await log.recover();
    const loc = await log.append(encodeRecord(meta(1), bodyOf(1)), 1);
    expect(log.diskBytes).toBe(loc.length);
    log.finish(loc);
    await log.releaseIdle();
    expect(files()).toEqual([]);
    expect(log.diskBytes).toBe(0);

    const next = await log.append(encodeRecord(meta(2), bodyOf(2)), 2);
    log.finish(next);
    await log.close();
    expect(files()).toEqual([]);
  });

  it('refuses a record that reads back damaged', async () => {
    const log = logAt();
    await log.recover();
    const loc = await log.append(encodeRecord(meta(1), bodyOf(1)), 1);
    const fd = await import('node:fs/promises').then((f) => f.open(join(dir, '000000000001.log'), 'r+'));
    await fd.write(Buffer.from('X'), 0, 1, loc.offset + loc.length - 1);
    await fd.close();
    await expect(log.read(loc)).rejects.toThrow('does not check out');
  });

  it('removes ack files whose segment is gone', async () => {
    const log = logAt();
    await log.recover();
    writeFileSync(join(dir, '000000000009.ack'), encodeAck(0, 1));
    await logAt().recover();
    expect(files()).toEqual([]);
  });
  describe('compaction', () => {
    /** Five segments of ten records each; in every segment only the record with seq ≡ 3 (mod 10) stays live. */
    async function pinnedSegments(log: SegmentLog) {
      await log.recover();
      const bodies = new Map<number, Buffer>();
      const live: RecordLocation[] = [];
      for (let s = 0; s < 5; s++) {
        const batch = Array.from({ length: 10 }, (_, i) => s * 10 + i + 1);
        for (const seq of batch) bodies.set(seq, bodyOf(seq));
        const locs = await Promise.all(batch.map((seq) => log.append(encodeRecord(meta(seq), bodies.get(seq)!), seq)));
        for (const loc of locs) {
          if (loc.seq % 10 === 3) live.push(loc);
          else log.finish(loc);
        }
      }
      return { bodies, live };
    }
    // A segment rolls once it has 10 records of ~170 bytes.
    const ROLL = 1500;

    it('moves the live records of mostly finished segments to the end of the log, gives the space back, and reads them byte for byte', async () => {
      const log = logAt(dir, ROLL);
      const { bodies, live } = await pinnedSegments(log);
      expect(files().filter((f) => f.endsWith('.log'))).toHaveLength(5);
      const before = log.diskBytes;
      const segments = log.compactable(COMPACT_UNDER_PRESSURE);
      expect(segments.map((s) => s.number)).toEqual([1, 2, 3, 4, 5]);
      for (const segment of segments) {
        const done = await log.compact(segment, live, () => true);
        expect(done).toMatchObject({ segment: segment.number, moved: 1, left: 0 });
      }
      expect(log.compactable(COMPACT_UNDER_PRESSURE)).toEqual([]);
      // The five pinned segments are gone; their five live records share one new segment.
      expect(files().filter((f) => f.endsWith('.log'))).toEqual(['000000000006.log']);
      expect(log.diskBytes).toBeLessThan(before / 4);
      for (const loc of live) {
        expect(loc.segment.number).toBe(6);
        const r = await log.read(loc);
        expect(r.meta.seq).toBe(loc.seq);
        expect(r.body.equals(bodies.get(loc.seq)!)).toBe(true);
      }
      // Finishing a moved record acks its copy: a restart finds only the others, once each, in order.
      log.finish(live[0]);
      await log.close();
      const { records } = await logAt(dir, ROLL).recover();
      expect(records.map((r) => r.meta.seq)).toEqual([13, 23, 33, 43]);
    });

    it('leaves alone segments that are mostly live, or sealed only just now, unless space is short', async () => {
      const log = logAt(dir, ROLL);
      await log.recover();
      const locs = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(encodeRecord(meta(i + 1), bodyOf(i + 1)), i + 1)));
      for (const loc of locs.slice(0, 3)) log.finish(loc); // 7 of 10 live
      expect(log.compactable(COMPACT_UNDER_PRESSURE)).toHaveLength(1);
      expect(log.compactable(COMPACT_NORMALLY, performance.now() + 10_000)).toEqual([]);
      for (const loc of locs.slice(3, 6)) log.finish(loc); // 4 of 10 live
      expect(log.compactable(COMPACT_NORMALLY)).toEqual([]); // sealed a moment ago: in-flight records finish by themselves
      expect(log.compactable(COMPACT_NORMALLY, performance.now() + COMPACT_NORMALLY.settleMs)).toHaveLength(1);
    });

    it('a record finished while its copy was being written has the copy finished too: nothing comes back after a restart', async () => {
      const log = logAt(dir, ROLL);
      const { live } = await pinnedSegments(log);
      const segment = live[0].segment;
      let finishedMeanwhile = false;
      log.beforeStep = (step) => {
        // The copy is being written: the event is delivered and finished at its old place.
        if (step === 'write' && !finishedMeanwhile) {
          finishedMeanwhile = true;
          log.finish(live[0]);
        }
      };
      const done = await log.compact(segment, [live[0]], (r) => r !== live[0] || !finishedMeanwhile);
      log.beforeStep = null;
      expect(finishedMeanwhile).toBe(true);
      expect(done.moved).toBe(0);
      expect(files()).not.toContain('000000000001.log');
      await log.close();
      const { records } = await logAt(dir, ROLL).recover();
      expect(records.map((r) => r.meta.seq)).toEqual([13, 23, 33, 43]);
    });

    /** Compacts the first segment with one of its two live records impossible to move; the moved one is then delivered. */
    async function moveOneOfTwo(log: SegmentLog, spoil: (second: RecordLocation) => void) {
      await log.recover();
      const locs = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(encodeRecord(meta(i + 1), bodyOf(i + 1)), i + 1)));
      for (const loc of locs) if (loc.seq !== 3 && loc.seq !== 5) log.finish(loc);
      spoil(locs[4]);
      const done = await log.compact(locs[2].segment, [locs[2], locs[4]], () => true);
      log.beforeStep = null;
      expect(done).toMatchObject({ moved: 1, left: 1 });
      expect(files()).toContain('000000000001.log'); // kept for the record that could not move
      log.finish(locs[2]); // delivered at its new place
      await log.close();
      return reconcile((await logAt(dir, ROLL).recover()).records, () => undefined).live.map((r) => r.meta.seq);
    }

    it('a segment kept for a record that could not be read still does not bring a moved, delivered event back after a restart', async () => {
      const log = logAt(dir, ROLL);
      const live = await moveOneOfTwo(log, (second) => {
        const fd = openSync(join(dir, '000000000001.log'), 'r+');
        writeSync(fd, Buffer.from('X'), 0, 1, second.offset + second.length - 1);
        closeSync(fd);
      });
      expect(live).not.toContain(3);
    });

    it('a segment kept because the second copy could not be written does not bring the first moved, delivered event back', async () => {
      const log = logAt(dir, ROLL);
      let writes = 0;
      const live = await moveOneOfTwo(log, () => {
        // Reads are one after another, so the two copies go out in two writes; the second fails.
        log.beforeStep = (step) => {
          if (step === 'write' && ++writes === 2) throw new Error('ENOSPC (injected)');
        };
      });
      expect(live).toEqual([5]);
    });

    it('goes on writing acks and deleting finished segments after a compaction that found nothing to move', async () => {
      const log = logAt(dir, ROLL);
      await log.recover();
      const locs = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(encodeRecord(meta(i + 1), bodyOf(i + 1)), i + 1)));
      expect(await log.compact(locs[0].segment, locs, () => false)).toMatchObject({ moved: 0, left: 0 });
      for (const loc of locs) log.finish(loc);
      await new Promise((r) => setTimeout(r, 100));
      expect(files()).toEqual([]);
    });

    it('a crash between the copy and the deletion of the old segment leaves the event twice on disk, and recovery keeps it once', async () => {
      const log = logAt(dir, ROLL);
      const { live } = await pinnedSegments(log);
      const crashed = `${dir}-crashed`;
      // The copy is on disk (synced) when the process dies: snapshot the directory at that moment.
      log.beforeStep = (step) => {
        if (step === 'sync') setImmediate(() => cpSync(dir, crashed, { recursive: true }));
      };
      await log.compact(live[0].segment, live, () => true);
      await new Promise((r) => setTimeout(r, 50));
      const { records } = await logAt(crashed, ROLL).recover();
      expect(records.filter((r) => r.meta.seq === 3)).toHaveLength(2);
      const settled = reconcile(records, () => undefined);
      expect(settled.live.map((r) => r.meta.seq)).toEqual([3, 13, 23, 33, 43]);
      expect(settled.finish).toHaveLength(1);
      rmSync(crashed, { recursive: true, force: true });
    });
  });
});

import { Profile } from 'pprof-format';
import { CpuProfile, CpuProfileNode, cpuProfileToPprof } from './cpu-profile-to-pprof';

const node = (
  id: number,
  functionName: string,
  url: string,
  lineNumber: number,
  columnNumber: number,
  children: number[] = [],
): CpuProfileNode => ({
  id,
  callFrame: { functionName, scriptId: url === '' ? '0' : '7', url, lineNumber, columnNumber },
  children,
});

/**
 * (root) ─┬ main (main.js, 0-based line 9) ─┬ (anonymous) (main.js, line 19) ─ hot (lib.js, line 0)
 *         │                                 └ hot (lib.js, line 0)   ← a second node of the same function
 *         ├ (program)
 *         ├ (garbage collector)
 *         └ (idle)
 */
const v8Profile: CpuProfile = {
  nodes: [
    node(1, '(root)', '', -1, -1, [2, 5, 6, 7]),
    node(2, 'main', 'file:///app/main.js', 9, 4, [3, 8]),
    node(3, '', 'file:///app/main.js', 19, 11, [4]),
    node(4, 'hot', 'file:///app/lib.js', 0, 0),
    node(5, '(program)', '', -1, -1),
    node(6, '(garbage collector)', '', -1, -1),
    node(7, '(idle)', '', -1, -1),
    node(8, 'hot', 'file:///app/lib.js', 0, 0),
  ],
  startTime: 1_000_000,
  endTime: 1_004_000,
  samples: [4, 4, 5, 8, 3, 6, 7, 4],
  timeDeltas: [100, 200, 300, 400, 500, 600, 700, 800],
};

/** The decoded profile with ids resolved: each sample as its frames (leaf first) and values. */
function readable(encoded: Uint8Array) {
  const p = Profile.decode(encoded);
  const str = (i: unknown) => p.stringTable.strings[Number(i)];
  const fn = new Map(p.function.map((f) => [Number(f.id), f]));
  const loc = new Map(p.location.map((l) => [Number(l.id), l]));
  const frame = (locationId: unknown) => {
    const l = loc.get(Number(locationId))!;
    expect(l.line).toHaveLength(1);
    const f = fn.get(Number(l.line[0].functionId))!;
    return `${str(f.name)} ${str(f.filename)}:${Number(l.line[0].line)}`;
  };
  return {
    p,
    str,
    functions: p.function.map((f) => ({ name: str(f.name), filename: str(f.filename), startLine: Number(f.startLine) })),
    samples: p.sample.map((s) => ({ stack: s.locationId.map(frame), value: s.value.map(Number) })),
  };
}

describe('cpuProfileToPprof', () => {
  it('gives samples/count and cpu/nanoseconds, the mean interval as period, start and duration in ns', () => {
    const { p, str } = readable(cpuProfileToPprof(v8Profile));
    expect(p.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(`${str(p.periodType!.type)}/${str(p.periodType!.unit)}`).toBe('cpu/nanoseconds');
    expect(Number(p.period)).toBe(500_000); // 4 ms over 8 samples
    expect(Number(p.timeNanos)).toBe(1_000_000_000);
    expect(Number(p.durationNanos)).toBe(4_000_000);
  });

  it('makes one function per distinct frame: (anonymous) for no name, the script URL, 1-based lines; no (root)', () => {
    const { functions, p } = readable(cpuProfileToPprof(v8Profile));
    expect(functions).toEqual([
      { name: 'main', filename: 'file:///app/main.js', startLine: 10 },
      { name: '(anonymous)', filename: 'file:///app/main.js', startLine: 20 },
      { name: 'hot', filename: 'file:///app/lib.js', startLine: 1 },
      { name: '(program)', filename: '', startLine: 0 },
      { name: '(garbage collector)', filename: '', startLine: 0 },
      { name: '(idle)', filename: '', startLine: 0 },
    ]);
    // a location per node but (root): both nodes of hot are locations of the one function
    expect(p.location).toHaveLength(7);
    expect(p.location.map((l) => Number(l.line[0].column))).toEqual([5, 12, 1, 0, 0, 0, 1]);
  });

  it('sums the samples of each node into one pprof sample, stack leaf first, values [count, ns]', () => {
    const { samples } = readable(cpuProfileToPprof(v8Profile));
    expect(samples).toEqual([
      { stack: ['hot file:///app/lib.js:1', '(anonymous) file:///app/main.js:20', 'main file:///app/main.js:10'], value: [3, 1_100_000] },
      { stack: ['(program) :0'], value: [1, 300_000] },
      { stack: ['hot file:///app/lib.js:1', 'main file:///app/main.js:10'], value: [1, 400_000] },
      { stack: ['(anonymous) file:///app/main.js:20', 'main file:///app/main.js:10'], value: [1, 500_000] },
      { stack: ['(garbage collector) :0'], value: [1, 600_000] },
      { stack: ['(idle) :0'], value: [1, 700_000] },
    ]);
    const total = samples.reduce((sum, s) => [sum[0] + s.value[0], sum[1] + s.value[1]], [0, 0]);
    expect(total).toEqual([8, 3_600_000]);
  });

  it('puts timeNanos on the wall clock with the offset given', () => {
    const { p } = readable(cpuProfileToPprof(v8Profile, { epochOffsetMicros: 1_796_000_000_000_000 }));
    expect(BigInt(p.timeNanos)).toBe(1_796_000_001_000_000_000n); // past 2^53: kept exact as a bigint
  });

  it('encodes a profile without samples, and counts a negative time delta as 0 ns', () => {
    const empty = readable(cpuProfileToPprof({ nodes: [node(1, '(root)', '', -1, -1)], startTime: 5, endTime: 5 }));
    expect(empty.samples).toEqual([]);
    expect(empty.functions).toEqual([]);
    expect(Number(empty.p.period)).toBe(0);

    const skewed = readable(cpuProfileToPprof({ ...v8Profile, samples: [5, 5], timeDeltas: [-50, 250] }));
    expect(skewed.samples).toEqual([{ stack: ['(program) :0'], value: [2, 250_000] }]);
  });
});

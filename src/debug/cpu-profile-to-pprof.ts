import type { FunctionInput, LocationInput, SampleInput } from 'pprof-format';

/** The parts of a V8 `.cpuprofile` (inspector `Profiler.Profile`) that the conversion reads. */
export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** Microseconds on V8's monotonic clock (not since the epoch). */
  startTime: number;
  endTime: number;
  /** Node id of each sample, in order. */
  samples?: number[];
  /** Microseconds since the previous sample (the first: since startTime). */
  timeDeltas?: number[];
}

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; scriptId: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface ToPprofOptions {
  /** Added to startTime to give timeNanos: the wall clock minus V8's monotonic clock, in µs. Default 0. */
  epochOffsetMicros?: number;
}

/**
 * A V8 CPU profile as pprof's `perftools.profiles.Profile`, protobuf-encoded (not gzipped).
 *
 * Sample types samples/count and cpu/nanoseconds; the period is the mean sampling interval.
 * Every node but `(root)` is a Location with one Line; `(program)`, `(idle)` and
 * `(garbage collector)` stay as functions of their own. Samples on the same node have the
 * same stack and are summed into one pprof Sample (stack leaf first, without `(root)`), each
 * V8 sample counting 1 and its time delta. pprof-format is loaded on the first call.
 */
export function cpuProfileToPprof(profile: CpuProfile, options: ToPprofOptions = {}): Uint8Array {
  const pprof = require('pprof-format') as typeof import('pprof-format');
  const strings = new pprof.StringTable();

  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const isRoot = (node: CpuProfileNode) => !parent.has(node.id) && node.callFrame.functionName === '(root)';

  const functions: FunctionInput[] = [];
  const functionIds = new Map<string, number>();
  const locations: LocationInput[] = [];
  const locationIds = new Map<number, number>();
  for (const node of profile.nodes) {
    if (isRoot(node)) continue;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const line = lineNumber >= 0 ? lineNumber + 1 : 0;
    const key = `${name}\0${url}\0${line}\0${columnNumber}`;
    let functionId = functionIds.get(key);
    if (functionId === undefined) {
      functionId = functions.length + 1;
      functionIds.set(key, functionId);
      const nameId = strings.dedup(name);
      functions.push({ id: functionId, name: nameId, systemName: nameId, filename: strings.dedup(url), startLine: line });
    }
    const locationId = locations.length + 1;
    locationIds.set(node.id, locationId);
    locations.push({ id: locationId, line: [{ functionId, line, column: columnNumber >= 0 ? columnNumber + 1 : 0 }] });
  }

  const stackOf = (nodeId: number): number[] => {
    const stack: number[] = [];
    for (let id: number | undefined = nodeId; id !== undefined; id = parent.get(id)) {
      const location = locationIds.get(id);
      if (location !== undefined) stack.push(location);
    }
    return stack;
  };
  const byNode = new Map<number, { locationId: number[]; value: [number, number] }>();
  const ids = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  ids.forEach((nodeId, i) => {
    let sample = byNode.get(nodeId);
    if (sample === undefined) {
      sample = { locationId: stackOf(nodeId), value: [0, 0] };
      byNode.set(nodeId, sample);
    }
    sample.value[0] += 1;
    sample.value[1] += Math.max(0, Math.round((deltas[i] ?? 0) * 1000));
  });
  const samples: SampleInput[] = [...byNode.values()];

  const durationMicros = Math.max(0, profile.endTime - profile.startTime);
  const result = new pprof.Profile({
    sampleType: [
      { type: strings.dedup('samples'), unit: strings.dedup('count') },
      { type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') },
    ],
    periodType: { type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') },
    period: ids.length > 0 ? Math.round((durationMicros * 1000) / ids.length) : 0,
    timeNanos: BigInt(Math.round(profile.startTime + (options.epochOffsetMicros ?? 0))) * 1000n,
    durationNanos: Math.round(durationMicros * 1000),
    sample: samples,
    location: locations,
    function: functions,
    stringTable: strings,
  });
  return result.encode();
}

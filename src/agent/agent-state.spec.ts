import {
  agentLine,
  CheckObservation,
  decide,
  FlapState,
  INITIAL_STATE,
  LoadReading,
  observe,
  parseStatusFile,
  Policy,
  Round,
  roundHealth,
  StatusFileReading,
  weightFor,
} from './agent-state';
import { passingCheck } from '../../test/support/check-observation';

const S = 1000;

const ok = (name = 'api'): CheckObservation => passingCheck(name);
const soft = (name = 'api'): CheckObservation => ({ ...ok(name), ok: false, softDown: true, statusCode: 503 });
const hard = (name = 'api'): CheckObservation => ({ ...ok(name), ok: false, reachable: false, statusCode: null, error: 'ECONNREFUSED' });
const pending = (name = 'health-check'): CheckObservation => ({ ...ok(name), ok: false, pending: true, statusCode: null });
const file = (text: string): StatusFileReading => parseStatusFile(text);
const READY = file('ready');

const policy = (p: Partial<Policy> = {}): Policy => ({ dampeningMs: 30 * S, graceMs: 120 * S, load: null, maxconn: null, ...p });

/** A node on a fake clock: `at(t, ...)` observes a round at t seconds; `ask(t)` is what it reports then. */
class FakeNode {
  state: FlapState = INITIAL_STATE;
  constructor(readonly p: Policy = policy()) {}
  at(t: number, checks: CheckObservation[], statusFile = READY, load: LoadReading | null = null): this {
    const round: Round = { at: t * S, checks, statusFile, load };
    this.state = observe(this.state, round);
    return this;
  }
  ask(t: number) {
    return decide(this.state, t * S, this.p);
  }
  line(t: number): string {
    return this.ask(t).agentMessage;
  }
}

describe('status file', () => {
  it.each([
    ['ready', 'ready'],
    ['drain', 'drain'],
    ['maint', 'maint'],
    ['unhealthy', 'unhealthy'],
    ['  READY\n', 'ready'],
    ['Drain\r\n', 'drain'],
    ['\tMaInT ', 'maint'],
  ])('%j is %s', (text, state) => expect(parseStatusFile(text).state).toBe(state));

  it.each(['', '\n', 'ready drain', 'readyy', 'up', 'ready\nextra', '\u0000\u0001binary', 'x'.repeat(5000)])('%j is invalid', (text) => {
    const r = parseStatusFile(text);
    expect(r.state).toBe('invalid');
    expect(r.contents!.length).toBeLessThanOrEqual(64);
  });

  it.each([
    ['missing', { state: 'missing', contents: null, error: 'ENOENT' }],
    ['unreadable', { state: 'unreadable', contents: null, error: 'EACCES' }],
    ['garbage', parseStatusFile('bananas')],
    ['unhealthy', parseStatusFile('unhealthy')],
  ] as Array<[string, StatusFileReading]>)('%s: unhealthy and drained, with all checks passing', (_what, reading) => {
    const node = new FakeNode().at(0, [ok()]).at(5, [ok()], reading);
    expect(roundHealth(node.state.last!).health).toBe('unhealthy');
    const v = node.ask(5);
    expect(v).toMatchObject({ healthy: false, status: 'drain', weight: 0 });
    expect(v.agentMessage).toBe('down drain 0%\n');
  });

  it('a bad status file is never softened by the grace', () => {
    const node = new FakeNode().at(0, [ok()]).at(5, [soft()], parseStatusFile('garbage'));
    expect(node.ask(6).healthy).toBe(false);
  });

  it('drain and maint are obeyed while healthy, weight 0', () => {
    expect(new FakeNode().at(0, [ok()], file('drain')).line(0)).toBe('up drain 0%\n');
    expect(new FakeNode().at(0, [ok()], file('maint')).line(0)).toBe('up maint 0%\n');
  });
});

describe('before anything is known', () => {
  it('reports down and drained until the first round', () => {
    const v = new FakeNode().ask(0);
    expect(v).toMatchObject({ healthy: false, damped: false, status: 'drain', weight: 0, agentMessage: 'down drain 0%\n' });
    expect(v.reasons).toEqual(['no round of checks has completed yet']);
  });

  it('a first healthy round is reported healthy at once: no dampening without an unhealthy round', () => {
    expect(new FakeNode().at(0, [ok()]).ask(0)).toMatchObject({ healthy: true, damped: false, agentMessage: 'up ready 100%\n' });
  });

  it('a pending input (the smee round trip before its first result) keeps it down without stamping dampening', () => {
    const node = new FakeNode().at(0, [ok(), pending()]);
    expect(roundHealth(node.state.last!).health).toBe('unknown');
    expect(node.ask(0)).toMatchObject({ healthy: false, damped: false });
    expect(node.state.lastUnhealthyAt).toBeNull();
    node.at(1, [ok(), ok('health-check')]);
    expect(node.ask(1)).toMatchObject({ healthy: true, damped: false });
  });

  it('a failing check next to a pending one is unhealthy', () => {
    expect(roundHealth({ at: 0, checks: [hard(), pending()], statusFile: READY, load: null }).health).toBe('unhealthy');
  });
});

describe('health dampening', () => {
  it('holds health down for the interval after the LAST unhealthy round', () => {
    const node = new FakeNode(policy({ dampeningMs: 30 * S, graceMs: 0 }));
    node.at(0, [ok()]).at(5, [hard()]).at(10, [hard()]).at(15, [ok()]);
    expect(node.ask(15)).toMatchObject({ healthy: false, damped: true });
    expect(node.ask(39.999)).toMatchObject({ healthy: false, damped: true });
    expect(node.ask(40)).toMatchObject({ healthy: true, damped: false }); // 10 + 30
    expect(node.line(40)).toBe('up ready 100%\n');
  });

  it('every new unhealthy round restarts it', () => {
    const node = new FakeNode(policy({ dampeningMs: 30 * S, graceMs: 0 }));
    node.at(0, [ok()]).at(5, [hard()]).at(10, [ok()]).at(30, [hard()]).at(35, [ok()]);
    expect(node.ask(50).healthy).toBe(false);
    expect(node.ask(60).healthy).toBe(true);
  });

  it('while damped the agent says down but keeps the admin state and weight', () => {
    const node = new FakeNode(policy({ graceMs: 0 })).at(0, [ok()]).at(5, [hard()]).at(10, [ok()]);
    expect(node.line(11)).toBe('down ready 100%\n');
  });

  it('0 turns it off', () => {
    const node = new FakeNode(policy({ dampeningMs: 0, graceMs: 0 })).at(0, [hard()]).at(5, [ok()]);
    expect(node.ask(5)).toMatchObject({ healthy: true, damped: false });
  });
});

describe('drain grace', () => {
  const p = policy({ dampeningMs: 30 * S, graceMs: 120 * S });

  it('reports up but drained while only soft-down checks fail, then down after the grace', () => {
    const node = new FakeNode(p).at(0, [ok('a'), ok('b')]).at(5, [soft('a'), ok('b')]);
    expect(node.ask(5)).toMatchObject({ healthy: true, damped: true, status: 'drain', weight: 0, agentMessage: 'up drain 0%\n' });
    node.at(100, [soft('a'), ok('b')]);
    expect(node.ask(124.9).agentMessage).toBe('up drain 0%\n'); // 5 + 120
    expect(node.ask(125)).toMatchObject({ healthy: false, damped: false, agentMessage: 'down ready 100%\n' });
  });

  it('is measured from the FIRST unhealthy round of the streak', () => {
    const node = new FakeNode(p).at(0, [ok()]);
    for (let t = 5; t <= 200; t += 5) node.at(t, [soft()]);
    expect(node.ask(124).healthy).toBe(true);
    expect(node.ask(126).healthy).toBe(false);
  });

  it('a hard failure is down at once', () => {
    const node = new FakeNode(p).at(0, [ok('a'), ok('b')]).at(5, [soft('a'), hard('b')]);
    expect(node.ask(5)).toMatchObject({ healthy: false, damped: false, agentMessage: 'down ready 100%\n' });
  });

  it('needs the node to have been healthy once since start-up', () => {
    const node = new FakeNode(p).at(0, [soft()]);
    expect(node.ask(1).healthy).toBe(false);
  });

  it('keeps maint as it is (stronger than drain)', () => {
    const node = new FakeNode(p).at(0, [ok()], file('maint')).at(5, [soft()], file('maint'));
    expect(node.line(6)).toBe('up maint 0%\n');
  });

  it('recovery after a graced spell is dampened like any other', () => {
    const node = new FakeNode(p).at(0, [ok()]).at(5, [soft()]).at(10, [ok()]);
    expect(node.ask(10)).toMatchObject({ healthy: false, damped: true });
    expect(node.ask(40).healthy).toBe(true);
  });

  it('a new streak gets a new grace', () => {
    const node = new FakeNode(p).at(0, [ok()]).at(5, [soft()]).at(10, [ok()]).at(300, [ok()]).at(305, [soft()]);
    expect(node.ask(400).healthy).toBe(true);
    expect(node.ask(426).healthy).toBe(false);
  });

  it('0 turns it off', () => {
    const node = new FakeNode(policy({ graceMs: 0 })).at(0, [ok()]).at(5, [soft()]);
    expect(node.ask(5).agentMessage).toBe('down ready 100%\n');
  });
});

describe('weight', () => {
  it.each([
    [0, 100],
    [1, 100],
    [2500, 50],
    [2600, 50],
    [2625, 50],
    [2700, 45],
    [4000, 20],
    [4800, 5],
    [4875, 5],
    [4900, 1],
    [4999, 1],
    [5000, 1],
    [7000, 1],
  ])('%d of 5000 → %d%%', (load, weight) => expect(weightFor(load, 5000)).toBe(weight));

  it('is proportional (no floor step): every step of 5% in between is reached', () => {
    const seen = new Set<number>();
    for (let load = 0; load <= 5000; load += 10) seen.add(weightFor(load, 5000));
    expect([...seen].sort((a, b) => a - b)).toEqual([1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100]);
  });

  // Half steps round up: 2625 of 5000 leaves 47.5% free, reported as 50%.
  it('takes fractional loads and maxima', () => expect(weightFor(0.4, 0.8)).toBe(50));

  const weighted = policy({ load: { max: 100, weighted: true } });
  const load = (value: number | null, error: string | null = null): LoadReading => ({ value, error });

  it('follows the load while ready', () => {
    expect(new FakeNode(weighted).at(0, [ok()], READY, load(30)).line(0)).toBe('up ready 70%\n');
  });

  it('is 1% while up when the load cannot be read', () => {
    expect(new FakeNode(weighted).at(0, [ok()], READY, load(null, 'no field participants')).line(0)).toBe('up ready 1%\n');
  });

  it('is 0% in drain and maint, whatever the load', () => {
    expect(new FakeNode(weighted).at(0, [ok()], file('drain'), load(10)).line(0)).toBe('up drain 0%\n');
    expect(new FakeNode(weighted).at(0, [ok()], file('maint'), load(10)).line(0)).toBe('up maint 0%\n');
  });

  it('drains above the maximum (signal-sidecar: participants > PARTICIPANT_MAX), and not at it', () => {
    expect(new FakeNode(weighted).at(0, [ok()], READY, load(101)).ask(0)).toMatchObject({ status: 'drain', weight: 0 });
    expect(new FakeNode(weighted).at(0, [ok()], READY, load(100)).line(0)).toBe('up ready 1%\n');
  });

  it('unweighted: 100% up to the maximum, drained above it', () => {
    const p = policy({ load: { max: 100, weighted: false } });
    expect(new FakeNode(p).at(0, [ok()], READY, load(99)).line(0)).toBe('up ready 100%\n');
    expect(new FakeNode(p).at(0, [ok()], READY, load(null, 'x')).line(0)).toBe('up ready 100%\n');
    expect(new FakeNode(p).at(0, [ok()], READY, load(101)).line(0)).toBe('up drain 0%\n');
  });

  it('is 100% with no load source', () => {
    expect(new FakeNode().at(0, [ok()]).line(0)).toBe('up ready 100%\n');
  });
});

describe('agent line', () => {
  it('is words HAProxy accepts, one line', () => {
    for (const [healthy, status, weight] of [
      [true, 'ready', 100],
      [false, 'drain', 0],
      [true, 'maint', 0],
      [true, 'ready', 1],
    ] as const) {
      expect(agentLine(healthy, status, weight, null)).toMatch(/^(up|down) (ready|drain|maint) (100|[1-9]?\d)%\n$/);
    }
  });

  it('appends maxconn when configured', () => {
    expect(agentLine(true, 'ready', 75, 40)).toBe('up ready 75% maxconn:40\n');
    expect(new FakeNode(policy({ maxconn: 10 })).at(0, [ok()]).line(0)).toBe('up ready 100% maxconn:10\n');
  });
});

describe('reasons', () => {
  it('say which check failed and how', () => {
    const node = new FakeNode(policy({ graceMs: 0 })).at(0, [
      hard('db'),
      { ...ok('web'), ok: false, statusCode: 500 },
      { ...ok('slow'), ok: false, timedOut: true, reachable: false },
    ]);
    expect(node.ask(0).reasons).toEqual(['db: ECONNREFUSED', 'web: answered 500', 'slow: timed out']);
  });

  it('name the status file and the dampening', () => {
    const node = new FakeNode(policy({ graceMs: 0 })).at(0, [ok()], parseStatusFile('what')).at(1, [ok()]);
    expect(node.ask(1).reasons.join('; ')).toMatch(/dampening: unhealthy 1\.0 s ago/);
    expect(new FakeNode().at(0, [ok()], parseStatusFile('what')).ask(0).reasons).toEqual([
      'status file holds "what", not ready, drain or maint: unhealthy and drained',
    ]);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { advanceClocks, ConnectionsSnapshot, QuietClocks, renderStateFile, tally, toAnswer } from './activity';
import { parseProcNetTcp } from './proc-net-tcp';

const fixture = (name: 'tcp' | 'tcp6') => readFileSync(join(__dirname, '..', '..', 'test', 'fixtures', 'proc-net', name), 'utf8');
const sockets = [...parseProcNetTcp(fixture('tcp'), 'ipv4').sockets, ...parseProcNetTcp(fixture('tcp6'), 'ipv6').sockets];

describe('tally', () => {
  it('counts each monitored local port over both tables', () => {
    expect(tally(sockets, [8080, 9090, 7070])).toEqual([
      // tcp: 2 ESTABLISHED, 1 TIME_WAIT, 1 CLOSE_WAIT; tcp6: 2 ESTABLISHED (mapped and ::1), 1 TIME_WAIT
      { port: 8080, active: 4, waiting: 2, listening: true, listenAddresses: ['0.0.0.0', '::'], otherStates: { CLOSE_WAIT: 1 } },
      { port: 9090, active: 1, waiting: 0, listening: true, listenAddresses: ['127.0.0.1'], otherStates: {} },
      { port: 7070, active: 0, waiting: 0, listening: false, listenAddresses: [], otherStates: {} },
    ]);
  });

  it('ignores sockets whose local port is not monitored, whatever their remote port', () => {
    expect(tally(sockets, [54000])).toEqual([
      { port: 54000, active: 1, waiting: 0, listening: false, listenAddresses: [], otherStates: {} },
    ]);
    expect(tally([], [8080])[0]).toMatchObject({ active: 0, waiting: 0, listening: false });
  });
});

describe('advanceClocks', () => {
  const run = (reads: Array<[at: number, counts: { active: number; waiting: number } | null]>) => {
    let clocks: QuietClocks | null = null;
    return reads.map(([at, counts]) => (clocks = advanceClocks(clocks, counts, at)));
  };

  it('starts both clocks at the first read when the port is quiet', () => {
    expect(
      run([
        [1000, { active: 0, waiting: 0 }],
        [2000, { active: 0, waiting: 0 }],
      ]),
    ).toEqual([
      { quietSince: 1000, idleSince: 1000 },
      { quietSince: 1000, idleSince: 1000 },
    ]);
  });

  it('stops both while a connection is established, and restarts them at the first quiet read', () => {
    const clocks = run([
      [1000, { active: 0, waiting: 0 }],
      [2000, { active: 2, waiting: 0 }],
      [3000, { active: 1, waiting: 0 }],
      [4000, { active: 0, waiting: 0 }],
      [5000, { active: 0, waiting: 0 }],
    ]);
    expect(clocks.map((c) => c.idleSince)).toEqual([1000, null, null, 4000, 4000]);
    expect(clocks.map((c) => c.quietSince)).toEqual([1000, null, null, 4000, 4000]);
  });

  it('keeps the idle clock running through TIME_WAIT, but not the quiet one', () => {
    const clocks = run([
      [1000, { active: 1, waiting: 0 }],
      [2000, { active: 0, waiting: 1 }],
      [3000, { active: 0, waiting: 1 }],
      [4000, { active: 0, waiting: 0 }],
    ]);
    expect(clocks.map((c) => c.idleSince)).toEqual([null, 2000, 2000, 2000]);
    expect(clocks.map((c) => c.quietSince)).toEqual([null, null, null, 4000]);
  });

  it('restarts both after a failed read: quiet before a failure says nothing about during it', () => {
    const clocks = run([
      [1000, { active: 0, waiting: 0 }],
      [2000, null],
      [3000, { active: 0, waiting: 0 }],
    ]);
    expect(clocks).toEqual([
      { quietSince: 1000, idleSince: 1000 },
      { quietSince: null, idleSince: null },
      { quietSince: 3000, idleSince: 3000 },
    ]);
  });
});

describe('toAnswer', () => {
  const at = Date.UTC(2027, 0, 15, 8, 0, 0);
  const ports = tally(sockets, [8080, 9090]);
  const snapshot = (over: Partial<ConnectionsSnapshot> = {}): ConnectionsSnapshot => ({
    at,
    error: null,
    ports,
    skippedLines: 4,
    clocks: { quietSince: null, idleSince: null },
    ...over,
  });

  it("sums the ports into spawner's four fields, then adds detail", () => {
    expect(toAnswer(snapshot(), at + 500)).toEqual({
      active_connections: 5,
      waiting_connections: 2,
      seconds_since_active: null,
      listening: true,
      seconds_idle: null,
      refreshed_at: '2027-01-15T08:00:00.000Z',
      error: null,
      skipped_lines: 4,
      ports: [
        {
          port: 8080,
          active_connections: 4,
          waiting_connections: 2,
          listening: true,
          listen_addresses: ['0.0.0.0', '::'],
          other_states: { CLOSE_WAIT: 1 },
        },
        { port: 9090, active_connections: 1, waiting_connections: 0, listening: true, listen_addresses: ['127.0.0.1'], other_states: {} },
      ],
    });
  });

  it('reports whole seconds since each clock started, rounded down', () => {
    const a = toAnswer(snapshot({ clocks: { quietSince: at - 20_000, idleSince: at - 61_999 } }), at);
    expect([a.seconds_since_active, a.seconds_idle]).toEqual([20, 61]);
    expect(toAnswer(snapshot({ clocks: { quietSince: at + 10, idleSince: at } }), at).seconds_since_active).toBe(0);
  });

  it('is listening only when every monitored port is', () => {
    expect(toAnswer(snapshot({ ports: tally(sockets, [8080, 7070]) }), at).listening).toBe(false);
  });

  it('has no counts, only the reason, when the tables could not be read', () => {
    expect(toAnswer(snapshot({ error: 'cannot read', ports: [], skippedLines: 0 }), at)).toEqual({
      active_connections: null,
      waiting_connections: null,
      seconds_since_active: null,
      listening: null,
      seconds_idle: null,
      refreshed_at: '2027-01-15T08:00:00.000Z',
      error: 'cannot read',
      skipped_lines: 0,
      ports: [],
    });
  });
});

describe('renderStateFile', () => {
  const at = 1_800_000_000_250;
  const base: ConnectionsSnapshot = {
    at,
    error: null,
    ports: tally([], [8080, 9090]),
    skippedLines: 0,
    clocks: { quietSince: null, idleSince: null },
  };

  it('writes key=value lines; updated_at rounded down, idle_since rounded up', () => {
    const text = renderStateFile({ ...base, clocks: { quietSince: at - 5_000, idleSince: at - 12_750 } }, [8080, 9090]);
    expect(text).toBe(
      'status=ok\nupdated_at=1800000000\nports=8080,9090\nactive_connections=0\nwaiting_connections=0\nlistening=false\n' +
        'idle_since=1799999988\nquiet_since=1799999996\n',
    );
  });

  it('leaves the clocks empty while the port is busy', () => {
    const text = renderStateFile({ ...base, ports: tally(sockets, [8080]) }, [8080]);
    expect(text).toContain('\nactive_connections=4\nwaiting_connections=2\nlistening=true\nidle_since=\nquiet_since=\n');
  });

  it('carries the reason on one line instead of counts when the read failed', () => {
    const text = renderStateFile({ ...base, ports: [], error: 'cannot read\n/proc/net/tcp: EACCES' }, [8080]);
    expect(text).toBe('status=error\nupdated_at=1800000000\nports=8080\nerror=cannot read /proc/net/tcp: EACCES\n');
  });
});

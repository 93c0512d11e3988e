import {
  CheckObservation,
  decide,
  FlapState,
  INITIAL_STATE,
  LoadReading,
  observe,
  parseStatusFile,
  Policy,
  Round,
  StatusFileReading,
} from './agent-state';
import { readCensus } from './census';
import { signalReport } from './signal-report';
import { passingCheck } from '../../test/support/check-observation';

const S = 1000;
const NOW = new Date('2025-05-06T07:08:09.010Z');

/** The Jitsi preset's checks, as a round sees them when all answer 200. */
const jicofo = (c: Partial<CheckObservation> = {}): CheckObservation => passingCheck('jicofo', { durationMs: 3, body: '', ...c });
const stats = (c: Partial<CheckObservation> = {}): CheckObservation => ({ ...jicofo(), name: 'jicofo-stats', body: undefined, ...c });
const prosody = (c: Partial<CheckObservation> = {}): CheckObservation => ({ ...jicofo(), name: 'prosody', body: undefined, ...c });
const READY = parseStatusFile('ready\n');
const LOAD: LoadReading = { value: 25, error: null, extra: { conferences: 3 } };

/** Policy of the preset with WEIGHT_PARTICIPANTS=true and PARTICIPANT_MAX=100. */
const JITSI_POLICY: Policy = { dampeningMs: 30 * S, graceMs: 120 * S, load: { max: 100, weighted: true }, maxconn: null };

/** Rounds observed at the given seconds; the report asked at the last one, as the service does. */
function reportAfter(
  rounds: Array<[t: number, checks: CheckObservation[], file?: StatusFileReading, load?: LoadReading | null]>,
  p = JITSI_POLICY,
  jicofoStats = true,
) {
  let state: FlapState = INITIAL_STATE;
  for (const [t, checks, statusFile = READY, load = LOAD] of rounds) {
    const round: Round = { at: t * S, checks, statusFile, load };
    state = observe(state, round);
  }
  const at = rounds.length === 0 ? 0 : rounds[rounds.length - 1][0] * S;
  return signalReport({ verdict: decide(state, at, p), round: state.last, jicofoStats, now: NOW });
}

describe("signalReport (signal-sidecar's /signal/report shape)", () => {
  it('all healthy: every documented field, participants and conferences from jicofo /stats', () => {
    const r = reportAfter([[0, [jicofo({ body: '' }), stats(), prosody()]]]);
    expect(r).toStrictEqual({
      time: '2025-05-06T07:08:09.010Z',
      healthy: true,
      status: 'ready',
      weight: '75%',
      agentmessage: 'up ready 75%',
      services: {
        jicofoHealthy: true,
        jicofoReachable: true,
        jicofoStatusCode: 200,
        jicofoStatusContents: '',
        jicofoStatsReachable: true,
        jicofoStatusStatusCode: 200,
        jicofoStatsStatusCode: 200,
        prosodyHealthy: true,
        prosodyReachable: true,
        prosodyStatusCode: 200,
      },
      statuses: { statusFileFound: true, statusFileContents: 'ready' },
      stats: { jicofoParticipants: 25, jicofoConferences: 3, prosodyParticipants: null, prosodySumSquaredParticipants: null },
    });
    // No census fields: signal-sidecar only had them with CENSUS_POLL, which is not supported.
    expect(Object.keys(r.stats)).toEqual([
      'jicofoParticipants',
      'jicofoConferences',
      'prosodyParticipants',
      'prosodySumSquaredParticipants',
    ]);
    expect(JSON.parse(JSON.stringify(r))).toStrictEqual(r);
  });

  it('jicofo 503 within the drain grace: healthy but drained, the 503 and its body shown', () => {
    const body = '{"error":"health check failed","reason":"bridge selector overloaded"}';
    const r = reportAfter([
      [0, [jicofo(), stats(), prosody()]],
      [5, [jicofo({ ok: false, softDown: true, statusCode: 503, body }), stats(), prosody()]],
    ]);
    expect(r).toMatchObject({ healthy: true, status: 'drain', weight: '0%', agentmessage: 'up drain 0%' });
    expect(r.services).toStrictEqual({
      jicofoHealthy: false,
      jicofoReachable: true,
      jicofoStatusCode: 503,
      jicofoStatusContents: body,
      jicofoStatsReachable: true,
      jicofoStatusStatusCode: 200,
      jicofoStatsStatusCode: 200,
      prosodyHealthy: true,
      prosodyReachable: true,
      prosodyStatusCode: 200,
    });
    expect(r.stats).toStrictEqual({
      jicofoParticipants: 25,
      jicofoConferences: 3,
      prosodyParticipants: null,
      prosodySumSquaredParticipants: null,
    });
  });

  it('prosody unreachable: unhealthy, prosodyReachable false and its code 0', () => {
    const refused = prosody({ ok: false, reachable: false, statusCode: null, error: 'ECONNREFUSED connect ECONNREFUSED 127.0.0.1:5280' });
    const r = reportAfter([[0, [jicofo(), stats(), refused]]]);
    expect(r).toMatchObject({ healthy: false, status: 'ready', weight: '75%', agentmessage: 'down ready 75%' });
    expect(r.services).toMatchObject({
      jicofoHealthy: true,
      jicofoStatusCode: 200,
      prosodyHealthy: false,
      prosodyReachable: false,
      prosodyStatusCode: 0,
    });
  });

  it('status file missing: unhealthy and drained, not found, contents empty', () => {
    const missing: StatusFileReading = { state: 'missing', contents: null, error: 'ENOENT' };
    const r = reportAfter([[0, [jicofo(), stats(), prosody()], missing]]);
    expect(r).toMatchObject({ healthy: false, status: 'drain', weight: '0%', agentmessage: 'down drain 0%' });
    expect(r.statuses).toStrictEqual({ statusFileFound: false, statusFileContents: '' });
  });

  it('a status file that cannot be read is not found either; one with a wrong word is, with its contents', () => {
    const unreadable: StatusFileReading = { state: 'unreadable', contents: null, error: 'EISDIR' };
    expect(reportAfter([[0, [jicofo(), stats(), prosody()], unreadable]]).statuses).toStrictEqual({
      statusFileFound: false,
      statusFileContents: '',
    });
    expect(reportAfter([[0, [jicofo(), stats(), prosody()], parseStatusFile('  bananas\n')]]).statuses).toStrictEqual({
      statusFileFound: true,
      statusFileContents: 'bananas',
    });
  });

  it('jicofo stats failing: its code, and null for numbers that could not be read (as signal-sidecar shows them)', () => {
    const r = reportAfter([
      [0, [jicofo(), stats({ ok: false, statusCode: 500 }), prosody()], READY, { value: null, error: 'answered 500' }],
    ]);
    expect(r.services).toMatchObject({ jicofoStatsReachable: true, jicofoStatusStatusCode: 500, jicofoStatsStatusCode: 500 });
    expect(r.stats).toStrictEqual({
      jicofoParticipants: null,
      jicofoConferences: null,
      prosodyParticipants: null,
      prosodySumSquaredParticipants: null,
    });
    expect(r).toMatchObject({ healthy: false, weight: '1%' });
  });

  it('participants without conferences in /stats: conferences null', () => {
    const r = reportAfter([[0, [jicofo(), stats(), prosody()], READY, { value: 40, error: null, extra: {} }]]);
    expect(r.stats).toStrictEqual({
      jicofoParticipants: 40,
      jicofoConferences: null,
      prosodyParticipants: null,
      prosodySumSquaredParticipants: null,
    });
  });

  it('generic configuration (no Jitsi checks): the verdict is reported, services are all unseen, stats null', () => {
    const app: CheckObservation = { ...jicofo(), name: 'app:8080/healthz', body: undefined };
    const policy: Policy = { ...JITSI_POLICY, load: { max: 200, weighted: true } };
    const r = reportAfter([[0, [app], parseStatusFile('drain'), { value: 50, error: null }]], policy, false);
    expect(r).toStrictEqual({
      time: '2025-05-06T07:08:09.010Z',
      healthy: true,
      status: 'drain',
      weight: '0%',
      agentmessage: 'up drain 0%',
      services: {
        jicofoHealthy: false,
        jicofoReachable: false,
        jicofoStatusCode: 0,
        jicofoStatusContents: '',
        jicofoStatsReachable: false,
        jicofoStatusStatusCode: 0,
        jicofoStatsStatusCode: 0,
        prosodyHealthy: false,
        prosodyReachable: false,
        prosodyStatusCode: 0,
      },
      statuses: { statusFileFound: true, statusFileContents: 'drain' },
      stats: { jicofoParticipants: null, jicofoConferences: null, prosodyParticipants: null, prosodySumSquaredParticipants: null },
    });
  });

  it('before the first round: status unknown, down, nothing seen, stats null', () => {
    const r = reportAfter([]);
    expect(r).toMatchObject({ healthy: false, status: 'unknown', weight: '0%', agentmessage: 'down drain 0%' });
    expect(r.services.jicofoReachable).toBe(false);
    expect(r.statuses).toStrictEqual({ statusFileFound: false, statusFileContents: '' });
    expect(r.stats).toStrictEqual({
      jicofoParticipants: null,
      jicofoConferences: null,
      prosodyParticipants: null,
      prosodySumSquaredParticipants: null,
    });
  });

  it('census read: prosodyParticipants and prosodySumSquaredParticipants from it; a failed read shows null, not the last counts', () => {
    const round: Round = { at: 0, checks: [jicofo(), stats(), prosody()], statusFile: READY, load: LOAD };
    const state = observe(INITIAL_STATE, round);
    const census = readCensus(
      JSON.stringify({
        room_census: [
          { room_name: 'a@conference.x', participants: 3 },
          { room_name: 'b@conference.x', participants: 4 },
        ],
      }),
    );
    const read = signalReport({ verdict: decide(state, 0, JITSI_POLICY), round: state.last, jicofoStats: true, census, now: NOW });
    expect(read.stats).toStrictEqual({
      jicofoParticipants: 25,
      jicofoConferences: 3,
      prosodyParticipants: 7,
      prosodySumSquaredParticipants: 25,
    });
    const failed = signalReport({
      verdict: decide(state, 0, JITSI_POLICY),
      round: state.last,
      jicofoStats: true,
      census: { ok: false, error: 'answered 404' },
      now: NOW,
    });
    expect(failed.stats).toMatchObject({ prosodyParticipants: null, prosodySumSquaredParticipants: null });
  });
});

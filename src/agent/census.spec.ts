import { readCensus } from './census';

describe('readCensus (prosody mod_muc_census answer)', () => {
  it('sums participants and their squares over the rooms, keeping each room as prosody gave it', () => {
    const r = readCensus(
      JSON.stringify({
        room_census: [
          { room_name: 'big@conference.meet.example.com', participants: 10, created_time: 1700000000 },
          { room_name: 'small@conference.meet.example.com', participants: 2, created_time: '1700000100' },
          { room_name: 'empty@conference.meet.example.com', participants: 0 },
        ],
      }),
    );
    expect(r).toMatchObject({ ok: true, participants: 12, sumSquaredParticipants: 104 });
    if (!r.ok) throw new Error(r.error);
    expect(r.rooms).toEqual([
      { room_name: 'big@conference.meet.example.com', participants: 10, created_time: 1700000000 },
      { room_name: 'small@conference.meet.example.com', participants: 2, created_time: '1700000100' },
      { room_name: 'empty@conference.meet.example.com', participants: 0 },
    ]);
  });

  it('an empty census is zero participants', () => {
    expect(readCensus('{"room_census":[]}')).toMatchObject({ ok: true, participants: 0, sumSquaredParticipants: 0, rooms: [] });
  });

  it.each([
    ['<html>not found</html>', 'answer is not JSON (starts "<html>not found</html>")'],
    ['{"rooms":[]}', 'answer has no room_census list'],
    ['null', 'answer has no room_census list'],
    ['{"room_census":[{"room_name":"a","participants":"3"}]}', 'room_census[0].participants is not a whole number'],
    ['{"room_census":[{"room_name":"a","participants":-1}]}', 'room_census[0].participants is not a whole number'],
    ['{"room_census":[null]}', 'room_census[0].participants is not a whole number'],
  ])('refuses %s: %s', (body, error) => {
    expect(readCensus(body)).toEqual({ ok: false, error });
  });
});

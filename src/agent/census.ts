/**
 * prosody's mod_muc_census answer (GET /room-census on the conference host):
 *
 *   {"room_census": [{"room_name": "room@conference.meet.example.com", "participants": 3, "created_time": 1700000000}, ...]}
 *
 * signal-sidecar's report sums it up as prosodyParticipants (participants over every room)
 * and prosodySumSquaredParticipants (each room's participants squared, summed: large rooms
 * weigh more than many small ones).
 */
export interface CensusRoom {
  room_name: string;
  participants: number;
  /** As prosody gives it (a timestamp; its type is passed on unchanged). */
  created_time?: unknown;
}

export type CensusReading =
  { ok: true; rooms: CensusRoom[]; participants: number; sumSquaredParticipants: number; at: Date } | { ok: false; error: string };

/** Rooms beyond this are not kept (a census is a few hundred rooms; the answer is at most 64 KiB anyway). */
const MAX_ROOMS = 10_000;

export function readCensus(body: string, now = new Date()): CensusReading {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { ok: false, error: `answer is not JSON (starts ${JSON.stringify(body.trimStart().slice(0, 24))})` };
  }
  const list = doc !== null && typeof doc === 'object' ? (doc as Record<string, unknown>).room_census : undefined;
  if (!Array.isArray(list)) return { ok: false, error: 'answer has no room_census list' };
  const rooms: CensusRoom[] = [];
  let participants = 0;
  let sumSquared = 0;
  for (const [i, item] of list.slice(0, MAX_ROOMS).entries()) {
    const room = item !== null && typeof item === 'object' ? (item as Record<string, unknown>) : {};
    const n = room.participants;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
      return { ok: false, error: `room_census[${i}].participants is not a whole number` };
    participants += n;
    sumSquared += n * n;
    rooms.push({
      room_name: typeof room.room_name === 'string' ? room.room_name : '',
      participants: n,
      ...(room.created_time !== undefined ? { created_time: room.created_time } : {}),
    });
  }
  return { ok: true, rooms, participants, sumSquaredParticipants: sumSquared, at: now };
}

import { readField } from './upstream-client';

describe('readField', () => {
  const jitsi = { field: 'participants', path: ['participants'], extraFields: { conferences: ['conferences'] } };

  it('reads the extra fields from the same answer', () => {
    expect(readField('{"participants": 25, "conferences": 3, "largest_conference": 9}', jitsi)).toEqual({
      value: 25,
      error: null,
      extra: { conferences: 3 },
    });
  });

  it('leaves out an extra field that is absent or not a number, and it never fails the reading', () => {
    expect(readField('{"participants": 25}', jitsi)).toEqual({ value: 25, error: null, extra: {} });
    expect(readField('{"participants": 25, "conferences": "3"}', jitsi)).toEqual({ value: 25, error: null, extra: {} });
  });

  it('still reads extra fields when the load field is missing; none from an answer that is not JSON', () => {
    expect(readField('{"conferences": 3}', jitsi)).toEqual({
      value: null,
      error: 'no field participants in the answer',
      extra: { conferences: 3 },
    });
    expect(readField('<html>', jitsi)).toEqual({ value: null, error: 'answer is not JSON (starts "<html>")' });
  });

  it('has no extra without extraFields', () => {
    expect(readField('{"a": {"b": 7}}', { field: 'a.b', path: ['a', 'b'] })).toStrictEqual({ value: 7, error: null });
  });
});

import { withLazyDateTimeFormat } from './lazy-date-time-format';

describe('withLazyDateTimeFormat', () => {
  it('gives formatters that format exactly as real ones, and restores the real constructor', () => {
    const Real = Intl.DateTimeFormat;
    const options: Intl.DateTimeFormatOptions = {
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: 'numeric',
      minute: '2-digit',
      timeZone: 'UTC',
    };
    const lazy = withLazyDateTimeFormat(() => new Intl.DateTimeFormat('en-US', options));
    expect(Intl.DateTimeFormat).toBe(Real);
    const when = Date.UTC(2026, 10, 23, 18, 5);
    expect(lazy.format(when)).toBe(new Real('en-US', options).format(when));
    expect(lazy.formatToParts(when)).toEqual(new Real('en-US', options).formatToParts(when));
    expect(lazy.resolvedOptions().timeZone).toBe('UTC');
  });

  it('restores the real constructor when loading throws', () => {
    const Real = Intl.DateTimeFormat;
    expect(() =>
      withLazyDateTimeFormat(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(Intl.DateTimeFormat).toBe(Real);
  });

  it("keeps Nest's logger working: its timestamps are real dates", () => {
    const { ConsoleLogger } = withLazyDateTimeFormat(() => jest.requireActual<typeof import('@nestjs/common')>('@nestjs/common'));
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (out.push(String(chunk)), true));
    try {
      new ConsoleLogger('Test', { timestamp: true, colors: false }).log('hello');
    } finally {
      spy.mockRestore();
    }
    expect(out.join('')).toMatch(/\d{1,2}\/\d{1,2}\/\d{4},? \d{1,2}:\d{2}:\d{2}.*hello/);
  });
});

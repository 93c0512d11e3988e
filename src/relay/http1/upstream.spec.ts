import { idleTimeout } from './upstream';

describe('idleTimeout (how long the relay keeps an idle connection to a destination)', () => {
  it("closes a second before the destination's Keep-Alive timeout when that is sooner than its own", () => {
    expect(idleTimeout(['Content-Type', 'text/plain', 'Keep-Alive', 'timeout=2'], 4000)).toBe(1000);
    expect(idleTimeout(['keep-alive', 'max=100, timeout=3'], 4000)).toBe(2000);
  });

  it('keeps its own when the destination allows longer, says nothing, or says something unreadable', () => {
    expect(idleTimeout(['Keep-Alive', 'timeout=75'], 4000)).toBe(4000);
    expect(idleTimeout(['Content-Length', '2'], 4000)).toBe(4000);
    expect(idleTimeout(['Keep-Alive', 'max=5'], 4000)).toBe(4000);
  });

  it('does not keep a connection the destination closes within a second', () => {
    expect(idleTimeout(['Keep-Alive', 'timeout=1'], 4000)).toBe(0);
    expect(idleTimeout(['Keep-Alive', 'timeout=0'], 4000)).toBe(0);
  });
});

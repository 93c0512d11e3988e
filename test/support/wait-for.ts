/**
 * Polls `probe` until it returns something other than undefined/false, or throws once
 * `timeoutMs` has passed, naming `what` and the last value seen. No fixed sleeps in tests.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5_000, everyMs = 20, describeLast }: { timeoutMs?: number; everyMs?: number; describeLast?: () => string } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeLast ? ` (last: ${describeLast()})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs every step of a suite's teardown in turn, even when one fails, then reports the
 * failures together: a browser that would not close must not leave a redis-server or a
 * sidecar process running, which would keep jest from exiting.
 */
export async function teardown(...steps: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} teardown steps failed`);
}

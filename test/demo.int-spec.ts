import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** The README's "run" command must stay true: the demo runs end to end and stops by itself. */
describe('npm run demo', () => {
  it('shows the health check turning green and a signed webhook arriving', () => {
    const root = join(__dirname, '..');
    const out = spawnSync(process.execPath, ['--disable-warning=MODULE_TYPELESS_PACKAGE_JSON', 'scripts/demo.mjs', '--once'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 50_000,
    });
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('status=success');
    expect(out.stdout).toMatch(/check-smee-health\.sh → exit 0: Health check passed/);
    expect(out.stdout).toMatch(/\[downstream\] +POST \/webhook\/ event=pull_request bytes=\d+ signature=valid/);
    expect(out.stdout).toMatch(/smee_events_relayed_total 1/);
  });
});

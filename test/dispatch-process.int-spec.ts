import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { spawnSidecar, SidecarProcess, killLeftover } from './support/process';
import { RecordingServer } from './support/recording-server';
import { eventually, freePort } from './support/sidecar';

function configFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sidecar-dispatch-')), 'config.yaml');
  writeFileSync(path, text);
  return path;
}

/** The built sidecar with dispatch rules: start-up refusal and the debug line. */
describe('the sidecar process with dispatch rules', () => {
  const destination = new RecordingServer();
  let running: SidecarProcess | undefined;

  beforeAll(() => destination.listen());
  afterAll(() => destination.close());
  afterEach(async () => {
    await killLeftover(running);
    running = undefined;
  });

  it('exits 78 before anything starts, naming each problem by its path in the file', async () => {
    const file = configFile(
      'key: environment\nrewrites:\n  dev:\n    patch:\n      - key: Connection\n        val: close\n      - key: X-A\n        val: "a\\r\\nb"\n    destination: example.com\n',
    );
    running = spawnSidecar({ SIDECAR_CONFIG: file });
    expect(await running.exited).toBe(78);
    const err = running.stderr();
    expect(err).toMatch(/invalid configuration \(3 problems\)/);
    expect(err).toContain(`${file}: rewrites.dev.patch[0].key: Connection is a hop-by-hop header`);
    expect(err).toContain(`${file}: rewrites.dev.patch[1].val: a header value cannot contain CR or LF`);
    expect(err).toContain(`${file}: rewrites.dev.destination: expected an absolute http:// or https:// URL`);
    expect(running.lines).toEqual([]);
  });

  it('starts with dispatch rules alone and names the chosen rule in the debug line of each request', async () => {
    const relay = await freePort();
    const file = configFile(
      `key: environment\ndestination: ${destination.url}\nrewrites:\n  dev:\n    patch:\n      - key: dispatched\n        val: true\n`,
    );
    running = spawnSidecar({
      SIDECAR_CONFIG: file,
      RELAY_PORT: String(relay),
      MANAGEMENT_PORT: String(await freePort()),
      LOG_LEVEL: 'debug',
    });
    expect(await running.ready).toMatchObject({ relay: 'proxy', dispatch: true });
    await request(`http://127.0.0.1:${relay}`).post('/hook?token=secret-value').set('environment', 'dev').send('x');
    await request(`http://127.0.0.1:${relay}`).post('/hook').send('x');
    const p = running;
    const lines = await eventually(
      () => {
        const found = p.lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'relaying');
        return found.length === 2 ? found : undefined;
      },
      3000,
      'two debug lines',
    );
    expect(lines.map((l) => [l.rule, l.path])).toEqual([
      ['dev', '/hook'],
      ['default', '/hook'],
    ]);
    expect(p.lines.join('\n')).not.toContain('secret-value');
  });
});

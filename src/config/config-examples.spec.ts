import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from './load-config';

const dir = join(__dirname, '..', '..', 'config');
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

/** Every example in config/ must load as it is, with nothing from the environment. */
describe('config/ examples', () => {
  it('exist', () => expect(files.length).toBeGreaterThan(0));

  it.each(files)('%s loads', (file) => {
    const path = join(dir, file);
    const r = loadConfig({ SIDECAR_CONFIG: path }, (p) => readFileSync(p, 'utf8'));
    if (!r.ok) throw new Error(r.problems.join('\n'));
  });

  it('connections.yaml switches the connection monitor on, alone', () => {
    const r = loadConfig({ SIDECAR_CONFIG: join(dir, 'connections.yaml') }, (p) => readFileSync(p, 'utf8'));
    expect(r.ok && r.config).toMatchObject({ relay: null, healthCheck: null, connections: { ports: [8080], refreshMs: 1000, idleSettleSeconds: 5 } });
  });
});

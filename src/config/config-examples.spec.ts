import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from './load-config';

const dir = join(__dirname, '..', '..', 'config');
const examples = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

describe('the example files in config/', () => {
  it('are there', () => expect(examples.length).toBeGreaterThan(0));

  it.each(examples)('%s loads as it is', (file) => {
    const loaded = loadConfig({ SIDECAR_CONFIG: join(dir, file) });
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
  });
});

describe('config/connections.yaml', () => {
  it('switches the connection monitor on, alone', () => {
    const loaded = loadConfig({ SIDECAR_CONFIG: join(dir, 'connections.yaml') });
    expect(loaded.ok && loaded.config).toMatchObject({ relay: null, healthCheck: null, connections: { ports: [8080], refreshMs: 1000, idleSettleSeconds: 5 } });
  });
});

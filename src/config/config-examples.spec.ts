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

describe('config/metrics-pusher.yaml', () => {
  it('switches remote write on, alone, with a scrape target and extra labels', () => {
    const loaded = loadConfig({ SIDECAR_CONFIG: join(dir, 'metrics-pusher.yaml') });
    expect(loaded.ok && loaded.config).toMatchObject({
      relay: null,
      healthCheck: null,
      connections: null,
      remoteWrite: { intervalMs: 30_000, queueSize: 60, labels: [['namespace', 'knative-lambda'], ['cluster', 'edge-1']], scrape: { targets: [{ url: 'http://127.0.0.1:8080/metrics' }] } },
    });
  });
});

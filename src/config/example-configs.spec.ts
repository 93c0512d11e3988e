import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from './load-config';

const CONFIG_DIR = join(__dirname, '..', '..', 'config');
const files = readdirSync(CONFIG_DIR).filter((f) => /\.ya?ml$/.test(f));

describe('example configuration files in config/', () => {
  it('has some', () => expect(files.length).toBeGreaterThan(0));

  it.each(files)('%s loads without a problem', (file) => {
    const result = loadConfig({ SIDECAR_CONFIG: join(CONFIG_DIR, file) }, (p) => readFileSync(p, 'utf8'));
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('metrics-pusher.yaml switches on remote write alone', () => {
    const result = loadConfig({ SIDECAR_CONFIG: join(CONFIG_DIR, 'metrics-pusher.yaml') }, (p) => readFileSync(p, 'utf8'));
    if (!result.ok) throw new Error(result.problems.join('\n'));
    expect(result.config.relay).toBeNull();
    expect(result.config.healthCheck).toBeNull();
    expect(result.config.remoteWrite).toMatchObject({ intervalMs: 30_000, queueSize: 60, labels: [['namespace', 'knative-lambda'], ['cluster', 'edge-1']] });
    expect(result.config.remoteWrite!.scrape.targets).toHaveLength(1);
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { loadConfig } from '../../src/config/load-config';
import type { SidecarConfig } from '../../src/config/sidecar-config';
import { Sidecar, startSidecar } from '../../src/sidecar';

/** A config as the sidecar would load it from `env`, on ephemeral loopback ports and a fresh shared volume. */
export function testConfig(env: Record<string, string>): SidecarConfig {
  const shared = mkdtempSync(join(tmpdir(), 'sidecar-shared-'));
  const loaded = loadConfig({ SHARED_VOLUME_PATH: shared, LISTEN_HOST: '127.0.0.1', ...env });
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const config = loaded.config;
  config.server.relayPort = 0;
  config.server.managementPort = 0;
  return config;
}

/** Starts a sidecar in this process; prom-client's global registry is emptied first. */
export async function start(env: Record<string, string>): Promise<Sidecar & { config: SidecarConfig; relayUrl: string; managementUrl: string }> {
  register.clear();
  const config = testConfig(env);
  const sidecar = await startSidecar(config);
  return {
    ...sidecar,
    config,
    relayUrl: `http://127.0.0.1:${sidecar.relayPort}`,
    managementUrl: `http://127.0.0.1:${sidecar.managementPort}`,
  };
}

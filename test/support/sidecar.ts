import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { register } from 'prom-client';
import { loadConfig } from '../../src/config/load-config';
import type { SidecarConfig } from '../../src/config/sidecar-config';
import { Sidecar, startSidecar } from '../../src/sidecar';
import { waitFor } from './wait-for';

/** A config as the sidecar would load it from `env`, on ephemeral loopback ports and a fresh shared volume. */
export function testConfig(env: Record<string, string>): SidecarConfig {
  const shared = mkdtempSync(join(tmpdir(), 'sidecar-shared-'));
  const loaded = loadConfig({ SHARED_VOLUME_PATH: shared, LISTEN_HOST: '127.0.0.1', ...env });
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const config = loaded.config;
  if (env.RELAY_PORT === undefined) config.server.relayPort = 0;
  if (env.MANAGEMENT_PORT === undefined) config.server.managementPort = 0;
  return config;
}

/** A TCP port that was free a moment ago, for a peer that must know the sidecar's port before it starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails after `ms` (see waitFor). */
export function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 5000, what = 'condition'): Promise<T> {
  return waitFor(what, probe, { timeoutMs: ms });
}

/** Starts a sidecar in this process; prom-client's global registry is emptied first. */
export async function start(
  env: Record<string, string>,
): Promise<Sidecar & { config: SidecarConfig; relayUrl: string; managementUrl: string }> {
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

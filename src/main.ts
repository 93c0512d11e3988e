import 'reflect-metadata';
import { EXIT_CONFIG, formatProblems, loadConfig } from './config/load-config';
import { SPAWNER_USAGE, wantsHelp } from './config/presets';
import { withLazyDateTimeFormat } from './common/lazy-date-time-format';
import { JsonLogger } from './logging/json-logger';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(SPAWNER_USAGE);
    process.exit(0);
  }
  // config.yaml in the working directory when SIDECAR_CONFIG is unset, as sidecar_http_dispatcher reads it.
  const loaded = loadConfig(process.env, undefined, { argv, fallbackFile: 'config.yaml' });
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(loaded.problems)}\n`);
    process.exit(EXIT_CONFIG);
  }
  const { config } = loaded;
  const logger = new JsonLogger(config.log);
  let sidecar;
  try {
    // Loaded only now: a configuration error is reported without paying for the module graph.
    const { startSidecar } = withLazyDateTimeFormat(() => require('./sidecar') as typeof import('./sidecar'));
    sidecar = await startSidecar(config, logger);
  } catch (e) {
    logger.error({ msg: 'start-up failed', reason: (e as Error).message });
    process.exit(1);
  }
  logger.log(
    {
      msg: 'pod-sidecar ready',
      relayPort: sidecar.relayPort,
      managementPort: sidecar.managementPort,
      relay: config.relay?.downstreamUrl || config.dispatch ? config.relay!.mode : 'off',
      dispatch: config.dispatch !== null,
      healthCheck: config.healthCheck !== null,
      agent: config.agent !== null,
      agentPort: sidecar.agentPort,
      monitorPorts: config.connections?.ports ?? null,
      remoteWrite: config.remoteWrite !== null,
      preset: config.compat.preset,
      ...(config.compat.chosenBy ? { presetFrom: config.compat.chosenBy } : {}),
    },
    'Bootstrap',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log({ msg: 'shutting down', signal }, 'Bootstrap');
    sidecar.close().then(
      () => process.exit(0),
      (e: Error) => {
        logger.error({ msg: 'shutdown failed', reason: e.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();

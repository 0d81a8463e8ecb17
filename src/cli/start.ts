import { resolveConfig, ConfigError, type PortcullisConfig } from '../config/index.js';
import { policyConfigCheck } from '../policy/index.js';
import { createLogger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Gateway } from '../gateway/gateway.js';

function loadOrExplain(cliPath: string | undefined): { config: PortcullisConfig; source: string } {
  return resolveConfig(cliPath, { checks: [policyConfigCheck], env: process.env });
}

/** `portcullis start`: run the gateway in the foreground until SIGTERM/SIGINT. */
export async function runStart(cliPath: string | undefined): Promise<void> {
  let loaded: { config: PortcullisConfig; source: string };
  try {
    loaded = loadOrExplain(cliPath);
  } catch (err) {
    const boot = createLogger({ level: 'info' });
    const issues = err instanceof ConfigError ? err.issues : undefined;
    boot.logger.fatal({ event: Events.BAD_CONFIG, code: 'PCL_ERR_CONFIG', issues, err: issues ? undefined : err }, 'invalid configuration');
    boot.flush();
    process.exitCode = 78; // EX_CONFIG: systemd does not restart-loop on it with RestartPreventExitStatus
    return;
  }
  const { config, source } = loaded;
  const { logger, flush } = createLogger(config.log);

  process.on('uncaughtException', (err) => {
    // A bug in one connection's handling must not take every agent's tunnel down with it.
    logger.error({ event: Events.INTERNAL_ERROR, err }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    logger.error({ event: Events.INTERNAL_ERROR, err }, 'unhandled rejection');
  });

  const gateway = new Gateway({ config, source, logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ event: Events.LIFECYCLE, signal }, 'second signal: exiting now');
      flush();
      process.exit(1);
    }
    stopping = true;
    logger.info({ event: Events.LIFECYCLE, signal }, 'shutdown requested');
    gateway
      .stop()
      .catch((err: unknown) => logger.error({ event: Events.INTERNAL_ERROR, err }, 'error while draining'))
      .finally(() => {
        flush();
        process.exit(0);
      });
  };
  // Handlers go in before the listener is bound: a SIGHUP that arrives during start-up must not
  // hit the default action (terminate), and a SIGTERM must still drain.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const next = loadOrExplain(cliPath);
      gateway.reload(next.config, next.source);
    } catch (err) {
      const issues = err instanceof ConfigError ? err.issues : undefined;
      logger.error({ event: Events.BAD_CONFIG, code: 'PCL_ERR_CONFIG', issues, err: issues ? undefined : err }, 'reload refused: keeping the running configuration');
    }
  });

  try {
    await gateway.start();
  } catch (err) {
    logger.fatal({ event: Events.NETWORK_ERROR, err }, 'cannot bind the proxy listener');
    flush();
    process.exit(1);
  }
}

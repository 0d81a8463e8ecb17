import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { ConfigError } from '../config/index.js';
import { createLogger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { loadConfig, type LoadedConfig } from '../runtime/shared.js';
import { runSingle } from '../runtime/single.js';
import { runPrimary } from '../runtime/primary.js';
import { runWorker } from '../runtime/worker.js';

/** `portcullis start`: run the gateway in the foreground until SIGTERM/SIGINT. */
export async function runStart(cliPath: string | undefined): Promise<void> {
  if (cluster.isWorker) return runWorker();
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(cliPath);
  } catch (err) {
    const boot = createLogger({ level: 'info' });
    const issues = err instanceof ConfigError ? err.issues : undefined;
    boot.logger.fatal({ event: Events.BAD_CONFIG, code: 'PCL_ERR_CONFIG', issues, err: issues ? undefined : err }, 'invalid configuration');
    boot.flush();
    process.exitCode = 78; // EX_CONFIG: the unit's RestartPreventExitStatus stops a restart loop
    return;
  }
  const workers = loaded.config.proxy.workers === 0 ? availableParallelism() : loaded.config.proxy.workers;
  const { logger, flush } = createLogger(loaded.config.log, { sharedStdout: workers > 1 });
  if (workers <= 1) return runSingle(cliPath, loaded, logger, flush);
  return runPrimary(cliPath, loaded, workers, logger, flush);
}

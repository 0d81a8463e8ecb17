import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { ConfigError } from '../config/index.js';
import { createLogger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { loadConfig, type LoadedConfig } from '../runtime/shared.js';
import { runSingle } from '../runtime/single.js';
import { runPrimary } from '../runtime/primary.js';
import { runWorker } from '../runtime/worker.js';

/**
 * The old generation may grow to 3x its live size before V8 marks it again (its default is 1.1-4x,
 * chosen per heap, and ~1.3x here). The gateway's live heap is small (~30 MB) but its ArrayBuffers
 * turn over at the line rate (socket reads, pool results, spool and upload buffers): under
 * syslog load V8 marked the whole heap 30-100 times a run, a tenth of the machine's CPU.
 * docs/design-notes.md has the numbers. V8 reads this at each collection, so it can be set here
 * rather than on every command line that starts the gateway (NODE_OPTIONS does not take it).
 */
export const HEAP_GROWING_FLAG = '--heap-growing-percent=200';

/** `portcullis start`: run the gateway in the foreground until SIGTERM/SIGINT. */
export async function runStart(cliPath: string | undefined): Promise<void> {
  setFlagsFromString(HEAP_GROWING_FLAG);
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

import client from 'prom-client';
import type { PortcullisConfig } from '../config/types.js';
import { createLogger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Gateway } from '../gateway/gateway.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { collectProcessMetrics } from '../metrics/runtime-metrics.js';
import { installCrashGuards } from './shared.js';
import { isMessage, WORKER_CONFIG_ENV, WORKER_SOURCE_ENV, type ToPrimary, type ToWorker } from './messages.js';

function send(msg: ToPrimary): void {
  process.send?.(msg);
}

/**
 * A cluster worker: one data-plane process. Its metrics live in prom-client's default registry,
 * which prom-client answers from when the supervisor's AggregatorRegistry asks over IPC.
 */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env[WORKER_CONFIG_ENV] ?? 'null') as PortcullisConfig | null;
  const source = process.env[WORKER_SOURCE_ENV] ?? 'supervisor';
  if (!config) throw new Error(`${WORKER_CONFIG_ENV} missing: workers are started by the supervisor`);
  const { logger, flush } = createLogger(config.log, { sharedStdout: true });
  installCrashGuards(logger);
  const metrics = config.admin.metrics ? new ProxyMetrics(client.register) : null;
  if (config.admin.metrics) {
    collectProcessMetrics(client.register);
    // Constructing an AggregatorRegistry is what installs prom-client's worker-side IPC listener
    // that answers the supervisor's metric requests from the default registry.
    new client.AggregatorRegistry();
  }
  const gateway = new Gateway({ config, source, logger, announce: false, ...(metrics ? { observer: metrics } : {}) });
  if (metrics) metrics.attach(gateway.proxy);

  let stopping = false;
  const drain = (why: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: Events.LIFECYCLE, why }, 'worker draining');
    gateway
      .stop()
      .catch((err: unknown) => logger.error({ event: Events.INTERNAL_ERROR, err }, 'error while draining'))
      .finally(() => {
        flush();
        process.exit(0);
      });
  };

  process.on('message', (msg: unknown) => {
    if (isMessage<Extract<ToWorker, { type: 'portcullis:drain' }>>(msg, 'portcullis:drain')) drain('supervisor');
    else if (isMessage<Extract<ToWorker, { type: 'portcullis:reload' }>>(msg, 'portcullis:reload')) {
      try {
        gateway.reload(msg.config, msg.source);
      } catch (err) {
        logger.error({ event: Events.BAD_CONFIG, err }, 'worker could not apply the reloaded configuration');
      }
    } else if (isMessage<Extract<ToWorker, { type: 'portcullis:clients?' }>>(msg, 'portcullis:clients?')) {
      send({ type: 'portcullis:clients', id: msg.id, ips: metrics ? metrics.clientsSeenWithin(msg.windowMs) : [] });
    }
  });
  // Signals sent to the whole process group (Ctrl-C, KillMode=control-group) drain this worker
  // too; SIGHUP is the supervisor's to handle (it validates the file once for all workers).
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));
  process.on('SIGHUP', () => {});
  // The supervisor is gone: do not linger as an orphan holding the port.
  process.on('disconnect', () => drain('supervisor exited'));

  try {
    const addresses = await gateway.start();
    send({ type: 'portcullis:listening', addresses });
  } catch (err) {
    logger.fatal({ event: Events.NETWORK_ERROR, err }, 'worker cannot bind the proxy listener');
    flush();
    process.exit(1);
  }
}

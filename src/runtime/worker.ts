import client from 'prom-client';
import { createLogger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Gateway } from '../gateway/gateway.js';
import { ProxyService } from '../gateway/proxy-service.js';
import { asServiceStartError } from '../gateway/errors.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { collectProcessMetrics } from '../metrics/runtime-metrics.js';
import { installCrashGuards } from './shared.js';
import { isMessage, type ToPrimary, type ToWorker } from './messages.js';

type Msg<T extends ToWorker['type']> = Extract<ToWorker, { type: T }>;

/** Logs a failed send once the worker has a logger. */
let sendFailed = (_type: ToPrimary['type'], _err: Error): void => {};

/**
 * The supervisor may be gone (killed, or exited): a send would fail with EPIPE or
 * ERR_IPC_CHANNEL_CLOSED, an 'error' event nothing handles, which crashed the worker. 'disconnect'
 * drains this worker anyway.
 */
function send(msg: ToPrimary): void {
  if (!process.connected) return;
  process.send?.(msg, undefined, {}, (err: Error | null) => {
    if (err) sendFailed(msg.type, err);
  });
}

/**
 * A cluster worker: one data-plane process. It asks the supervisor for its configuration over IPC
 * (never the environment: see messages.ts). Its metrics live in prom-client's default registry,
 * which prom-client answers from when the supervisor's AggregatorRegistry asks over IPC.
 */
export async function runWorker(): Promise<void> {
  let gateway: Gateway | null = null;
  let drainMs = 0;
  let stopping = false;
  let flushLogs = (): void => {};
  const drain = (why: string): void => {
    if (stopping) return;
    stopping = true;
    const done = (): void => {
      flushLogs();
      process.exit(0);
    };
    if (!gateway) return done(); // asked to stop before it had a configuration
    void gateway.drain(drainMs, { why }).finally(done);
  };
  // Signals sent to the whole process group (Ctrl-C, KillMode=control-group) drain this worker
  // too; SIGHUP is the supervisor's to handle (it validates the file once for all workers).
  process.on('SIGTERM', () => drain('SIGTERM'));
  process.on('SIGINT', () => drain('SIGINT'));
  process.on('SIGHUP', () => {});
  // The supervisor is gone: do not linger as an orphan holding the port.
  process.on('disconnect', () => drain('supervisor exited'));

  const { config, share } = await new Promise<Msg<'portcullis:config'>>((resolve) => {
    const onConfig = (msg: unknown): void => {
      if (!isMessage<Msg<'portcullis:config'>>(msg, 'portcullis:config')) return;
      process.removeListener('message', onConfig);
      resolve(msg);
    };
    process.on('message', onConfig);
    process.on('message', (msg: unknown) => {
      if (isMessage<Msg<'portcullis:drain'>>(msg, 'portcullis:drain')) drain('supervisor');
    });
    // Asked only now that a listener is in place: a message sent before it would be lost.
    send({ type: 'portcullis:config?' });
  });
  drainMs = config.proxy.drainMs;

  const { logger, flush } = createLogger(config.log, { sharedStdout: true });
  flushLogs = flush;
  installCrashGuards(logger);
  sendFailed = (type, err) => logger.debug({ event: Events.WORKER_IPC_SEND, type, err }, 'message to the supervisor not sent');
  const metrics = config.admin.metrics ? new ProxyMetrics(client.register) : null;
  if (config.admin.metrics) {
    collectProcessMetrics(client.register);
    // Constructing an AggregatorRegistry is what installs prom-client's worker-side IPC listener
    // that answers the supervisor's metric requests from the default registry.
    new client.AggregatorRegistry();
  }
  const proxy = new ProxyService({ config, source: 'supervisor', logger, announce: false, ...(metrics ? { observer: metrics } : {}) });
  if (metrics) metrics.attach(proxy.server);
  // The limits are gateway-wide: this worker enforces its share (the supervisor divides them).
  proxy.server.setLimitShare(share);
  const running = new Gateway({ logger, services: [proxy] });
  gateway = running;

  process.on('message', (msg: unknown) => {
    if (isMessage<Msg<'portcullis:reload'>>(msg, 'portcullis:reload')) {
      // At once, in message order: a rebalanced share that follows this message must not be overwritten by it.
      proxy.server.setLimitShare(msg.share);
      running
        .reload(msg.config)
        .then(() => {
          drainMs = msg.config.proxy.drainMs;
          logger.level = msg.config.log.level;
          logger.info({ event: Events.CONFIG_RELOADED }, 'configuration reloaded');
        })
        .catch((err: unknown) => logger.error({ event: Events.BAD_CONFIG, err }, 'worker could not apply the reloaded configuration'));
    } else if (isMessage<Msg<'portcullis:share'>>(msg, 'portcullis:share')) {
      proxy.server.setLimitShare(msg.share);
      // The supervisor says when every worker of a rebalance enforces its new share (event 211).
      send({ type: 'portcullis:share-applied', round: msg.round, enforced: msg.share.maxConnections });
    } else if (isMessage<Msg<'portcullis:load?'>>(msg, 'portcullis:load?')) {
      const enforced = proxy.server.limitShare?.maxConnections ?? config.proxy.limits.maxConnections;
      send({ type: 'portcullis:load', id: msg.id, admitted: proxy.server.admittedConnections, enforced });
    } else if (isMessage<Msg<'portcullis:clients?'>>(msg, 'portcullis:clients?')) {
      send({ type: 'portcullis:clients', id: msg.id, ips: metrics ? metrics.clientsSeenWithin(msg.windowMs) : [] });
    }
  });

  try {
    await running.start();
  } catch (err) {
    // The supervisor says it, once for all workers, and stops the gateway (this worker included).
    const failure = asServiceStartError('proxy', err);
    logger.debug({ event: Events.START_FAILED, code: failure.code, configKey: failure.configKey }, 'worker could not start');
    send({ type: 'portcullis:start-failed', configKey: failure.configKey, cause: failure.cause });
    return;
  }
  send({ type: 'portcullis:listening', addresses: [...proxy.bound] });
}

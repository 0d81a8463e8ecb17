import client from 'prom-client';
import type { Logger } from '../log/logger.js';
import { RuntimeMetrics, CONNECTED_CLIENTS_WINDOW_MS } from '../metrics/runtime-metrics.js';
import { runGateway, type RunningGateway } from './run.js';
import { forwarderServices, type LoadedConfig } from './shared.js';
import { WorkerPool } from './worker-pool.js';

/**
 * The supervisor: runs the pool of data-plane workers (which replaces any that die and hands out
 * reloads validated once) and the admin listener, and sums metrics across workers.
 */
export async function runPrimary(cliPath: string | undefined, loaded: LoadedConfig, workerCount: number, logger: Logger, flush: () => void): Promise<void> {
  const { config } = loaded;
  const aggregator = new client.AggregatorRegistry();
  const own = new client.Registry();
  const runtime = new RuntimeMetrics(own);
  let running: RunningGateway | null = null;
  const pool = new WorkerPool({
    config,
    source: loaded.source,
    count: workerCount,
    logger,
    restarts: runtime.workerRestarts,
    onLateFailure: (err) => void running?.fail(err),
  });

  running = await runGateway({
    cliPath,
    loaded,
    logger,
    flush,
    // The forwarder has per-node state (its spool): it runs in the supervisor, never in a worker.
    services: [pool, ...(await forwarderServices(config, logger, config.admin.metrics ? own : null))],
    runtime,
    async metrics() {
      const { total, listening } = pool.counts;
      runtime.workers.reset();
      runtime.workers.set({ state: 'listening' }, listening);
      runtime.workers.set({ state: 'starting' }, Math.max(0, total - listening));
      // admin.* is restart-only: the start configuration says whether workers collect metrics.
      if (config.admin.metrics) runtime.connectedClients.set(await pool.connectedClients(CONNECTED_CLIENTS_WINDOW_MS));
      const [workers, mine] = await Promise.all([config.admin.metrics ? aggregator.clusterMetrics() : Promise.resolve(''), own.metrics()]);
      return { contentType: aggregator.contentType, body: workers + (workers.endsWith('\n') || workers === '' ? '' : '\n') + mine };
    },
    reloaded: () => ({ workers: pool.counts.total, allow: pool.allowlist() }),
    status: () => ({ mode: 'cluster', pid: process.pid, balance: config.proxy.balance, workers: pool.workers() }),
    onSecondSignal: () => pool.killAll(),
    drainStarting: (deadlineMs) => pool.drainIfStarting(deadlineMs),
  });
}

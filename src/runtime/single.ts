import client from 'prom-client';
import type { Logger } from '../log/logger.js';
import { ProxyService } from '../gateway/proxy-service.js';
import { describePolicy } from '../policy/index.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { RuntimeMetrics, collectProcessMetrics, CONNECTED_CLIENTS_WINDOW_MS } from '../metrics/runtime-metrics.js';
import { runGateway } from './run.js';
import { forwarderServices, type LoadedConfig } from './shared.js';

/** workers: 1 — the proxy and the admin listener in one process. */
export async function runSingle(cliPath: string | undefined, loaded: LoadedConfig, logger: Logger, flush: () => void): Promise<void> {
  const { config } = loaded;
  const registry = new client.Registry();
  const metrics = config.admin.metrics ? new ProxyMetrics(registry) : null;
  const runtime = new RuntimeMetrics(registry);
  if (config.admin.metrics) collectProcessMetrics(registry);
  const proxy = new ProxyService({ config, source: loaded.source, logger, announce: true, ...(metrics ? { observer: metrics } : {}) });
  if (metrics) metrics.attach(proxy.server);

  await runGateway({
    cliPath,
    loaded,
    logger,
    flush,
    // The forwarder has per-node state (its spool): it runs here, beside the proxy.
    services: [proxy, ...(await forwarderServices(config, logger, config.admin.metrics ? registry : null))],
    runtime,
    async metrics() {
      runtime.workers.reset();
      runtime.workers.set({ state: 'listening' }, proxy.bound.length > 0 ? 1 : 0);
      if (metrics) runtime.connectedClients.set(metrics.clientsSeenWithin(CONNECTED_CLIENTS_WINDOW_MS).length);
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    reloaded: () => ({ allow: describePolicy(proxy.server.ctx.policy) }),
    status: () => ({ mode: 'single', pid: process.pid, listen: proxy.bound, connections: proxy.server.activeConnections, tunnels: proxy.server.openTunnels }),
  });
}

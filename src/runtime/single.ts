import client from 'prom-client';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Gateway } from '../gateway/gateway.js';
import { startAdminServer } from '../admin/server.js';
import { ProxyMetrics } from '../metrics/proxy-metrics.js';
import { RuntimeMetrics, collectProcessMetrics, CONNECTED_CLIENTS_WINDOW_MS } from '../metrics/runtime-metrics.js';
// --- forwarder hook (issue 9); rewired onto the services list at merge ---
import { startForwarderIfConfigured, forwarderReadiness, reloadForwarder } from '../forwarder/runtime-hook.js';
import type { ForwarderService } from '../forwarder/service.js';
// --- end forwarder hook ---
import { installCrashGuards, installSignalHandlers, restartOnlyChanges, tryReload, type LoadedConfig } from './shared.js';

/** workers: 1 — the proxy and the admin listener in one process. */
export async function runSingle(cliPath: string | undefined, loaded: LoadedConfig, logger: Logger, flush: () => void): Promise<void> {
  let { config } = loaded;
  installCrashGuards(logger);
  const registry = new client.Registry();
  const metrics = config.admin.metrics ? new ProxyMetrics(registry) : null;
  const runtime = new RuntimeMetrics(registry);
  if (config.admin.metrics) collectProcessMetrics(registry);
  const gateway = new Gateway({ config, source: loaded.source, logger, ...(metrics ? { observer: metrics } : {}) });
  if (metrics) metrics.attach(gateway.proxy);
  let listening = false;
  let draining = false;
  let forwarder: ForwarderService | null = null; // forwarder hook

  const reload = (): ReturnType<typeof tryReload> => {
    const r = tryReload(cliPath, logger, (next) => {
      const restart = restartOnlyChanges(config, next.config);
      if (restart.length) logger.warn({ event: Events.CONFIG_RELOADED, keys: restart }, 'these settings take effect on restart');
      reloadForwarder(forwarder, next.config, logger); // forwarder hook: throws on a bad forwarder section
      gateway.reload(next.config, next.source);
      config = next.config;
    });
    runtime.configReloads.inc({ result: r.ok ? 'ok' : 'refused' });
    return r;
  };
  const readiness = (): { ready: boolean; reasons: string[] } => {
    const reasons: string[] = [];
    if (!listening) reasons.push('proxy listener not bound');
    if (draining) reasons.push('draining');
    reasons.push(...forwarderReadiness(forwarder).reasons); // forwarder hook
    return { ready: reasons.length === 0, reasons };
  };

  const admin = await startAdminServer(
    config.admin,
    {
      async metrics() {
        runtime.ready.set(readiness().ready ? 1 : 0);
        runtime.workers.reset();
        runtime.workers.set({ state: 'listening' }, listening ? 1 : 0);
        if (metrics) runtime.connectedClients.set(metrics.clientsSeenWithin(CONNECTED_CLIENTS_WINDOW_MS).length);
        return { contentType: registry.contentType, body: await registry.metrics() };
      },
      readiness,
      status: () => ({ mode: 'single', pid: process.pid, ready: readiness(), listen: gateway.bound, connections: gateway.proxy.activeConnections, tunnels: gateway.proxy.openTunnels }),
      reload: async () => reload(),
    },
    logger,
  );

  installSignalHandlers({
    logger,
    flush,
    reload: () => void reload(),
    drain: async (signal) => {
      draining = true; // /readyz answers 503 from here on, while live tunnels drain
      logger.info({ event: Events.LIFECYCLE, signal }, 'shutdown requested');
      await Promise.all([gateway.stop(), forwarder?.drain(config.proxy.drainMs)]); // forwarder hook
      await admin.app.close();
    },
  });

  try {
    await gateway.start();
    listening = true;
  } catch (err) {
    logger.fatal({ event: Events.NETWORK_ERROR, err }, 'cannot bind the proxy listener');
    flush();
    process.exit(1);
  }
  // forwarder hook
  try {
    forwarder = await startForwarderIfConfigured(config, logger, config.admin.metrics ? registry : null);
  } catch (err) {
    logger.fatal({ event: Events.FWD_LIFECYCLE, err }, `cannot start the forwarder: ${(err as Error).message}`);
    flush();
    process.exit(1);
  }
}

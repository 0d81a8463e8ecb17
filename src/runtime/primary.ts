import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { compilePolicy, describePolicy } from '../policy/index.js';
import { announceListening } from '../gateway/gateway.js';
import type { BoundAddress } from '../proxy/index.js';
import { startAdminServer } from '../admin/server.js';
import { RuntimeMetrics, CONNECTED_CLIENTS_WINDOW_MS } from '../metrics/runtime-metrics.js';
// --- forwarder hook (issue 9): the forwarder runs in the supervisor (one spool writer per node) ---
import { startForwarderIfConfigured, forwarderReadiness, reloadForwarder } from '../forwarder/runtime-hook.js';
import type { ForwarderService } from '../forwarder/service.js';
// --- end forwarder hook ---
import { installCrashGuards, installSignalHandlers, restartOnlyChanges, tryReload, type LoadedConfig } from './shared.js';
import { isMessage, WORKER_CONFIG_ENV, WORKER_SOURCE_ENV, type ToPrimary, type ToWorker } from './messages.js';

/** A worker that dies this often within the window is restarted with a pause, not in a tight loop. */
const CRASH_WINDOW_MS = 30_000;
const CRASH_BURST = 5;
const CRASH_PAUSE_MS = 5_000;

/**
 * The supervisor: forks the data-plane workers, replaces any that die, runs the admin listener,
 * sums metrics across workers, validates reloads once and hands them out, and orchestrates the
 * drain on SIGTERM.
 */
export async function runPrimary(cliPath: string | undefined, loaded: LoadedConfig, workerCount: number, logger: Logger, flush: () => void): Promise<void> {
  let { config, source } = loaded;
  installCrashGuards(logger);
  // Must be set before the first fork. Round-robin: the supervisor accepts and hands out.
  cluster.schedulingPolicy = config.proxy.balance === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;

  const aggregator = new client.AggregatorRegistry();
  const own = new client.Registry();
  const runtime = new RuntimeMetrics(own);
  const listening = new Map<number, BoundAddress[]>();
  const crashes: number[] = [];
  let draining = false;
  let announced = false;
  let forwarder: ForwarderService | null = null; // forwarder hook
  let nextQueryId = 1;
  const pendingClientQueries = new Map<number, (ips: string[]) => void>();

  const readiness = (): { ready: boolean; reasons: string[] } => {
    const reasons: string[] = [];
    if (draining) reasons.push('draining');
    if (listening.size === 0) reasons.push('no data-plane worker is listening');
    reasons.push(...forwarderReadiness(forwarder).reasons); // forwarder hook
    return { ready: reasons.length === 0, reasons };
  };

  const workerEnv = (): Record<string, string> => ({ [WORKER_CONFIG_ENV]: JSON.stringify(config), [WORKER_SOURCE_ENV]: source });
  const fork = (): Worker => {
    const w = cluster.fork(workerEnv());
    w.on('error', (err) => logger.warn({ event: Events.INTERNAL_ERROR, err, worker: w.id }, 'worker IPC error'));
    return w;
  };

  cluster.on('message', (worker: Worker, msg: unknown) => {
    if (isMessage<Extract<ToPrimary, { type: 'portcullis:listening' }>>(msg, 'portcullis:listening')) {
      listening.set(worker.id, msg.addresses);
      logger.info({ event: Events.LIFECYCLE, worker: worker.id, pid: worker.process.pid }, 'worker listening');
      if (!announced && listening.size === workerCount) {
        announced = true;
        announceListening(logger, config, { listen: msg.addresses, workers: workerCount, balance: config.proxy.balance, config: source, allow: describePolicy(compilePolicy(config)) });
      }
    } else if (isMessage<Extract<ToPrimary, { type: 'portcullis:clients' }>>(msg, 'portcullis:clients')) {
      pendingClientQueries.get(msg.id)?.(msg.ips);
    }
  });

  cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
    listening.delete(worker.id);
    if (draining) return;
    runtime.workerRestarts.inc();
    const now = Date.now();
    crashes.push(now);
    while (crashes.length && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
    const pause = crashes.length >= CRASH_BURST ? CRASH_PAUSE_MS : 0;
    logger.error({ event: Events.INTERNAL_ERROR, worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: pause }, 'worker exited unexpectedly: replacing it');
    setTimeout(() => {
      if (!draining) fork();
    }, pause).unref();
  });

  /** Distinct client IPs across workers: a per-worker count summed would count a client twice. */
  const connectedClients = async (): Promise<number> => {
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
    const union = new Set<string>();
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const id = nextQueryId++;
            const timer = setTimeout(done, 1_000);
            function done(ips: string[] = []): void {
              clearTimeout(timer);
              pendingClientQueries.delete(id);
              for (const ip of ips) union.add(ip);
              resolve();
            }
            pendingClientQueries.set(id, done);
            const q: ToWorker = { type: 'portcullis:clients?', id, windowMs: CONNECTED_CLIENTS_WINDOW_MS };
            w.send(q);
          }),
      ),
    );
    return union.size;
  };

  const reload = (): ReturnType<typeof tryReload> => {
    const r = tryReload(cliPath, logger, (next) => {
      compilePolicy(next.config); // refuse here, once, rather than in every worker
      reloadForwarder(forwarder, next.config, logger); // forwarder hook: throws on a bad forwarder section
      const restart = restartOnlyChanges(config, next.config);
      if (restart.length) logger.warn({ event: Events.CONFIG_RELOADED, keys: restart }, 'these settings take effect on restart');
      // Keep the restart-only settings as running so replacement workers match their siblings.
      config = { ...next.config, proxy: { ...next.config.proxy, listen: config.proxy.listen, workers: config.proxy.workers, balance: config.proxy.balance }, admin: config.admin };
      source = next.source;
      const msg: ToWorker = { type: 'portcullis:reload', config, source };
      for (const w of Object.values(cluster.workers ?? {})) w?.send(msg);
      logger.level = config.log.level;
      logger.info({ event: Events.CONFIG_RELOADED, config: source, workers: Object.keys(cluster.workers ?? {}).length }, 'configuration reloaded');
    });
    runtime.configReloads.inc({ result: r.ok ? 'ok' : 'refused' });
    return r;
  };

  const admin = await startAdminServer(
    config.admin,
    {
      async metrics() {
        runtime.ready.set(readiness().ready ? 1 : 0);
        runtime.workers.reset();
        const total = Object.keys(cluster.workers ?? {}).length;
        runtime.workers.set({ state: 'listening' }, listening.size);
        runtime.workers.set({ state: 'starting' }, Math.max(0, total - listening.size));
        if (config.admin.metrics) runtime.connectedClients.set(await connectedClients());
        const [workers, mine] = await Promise.all([config.admin.metrics ? aggregator.clusterMetrics() : Promise.resolve(''), own.metrics()]);
        return { contentType: aggregator.contentType, body: workers + (workers.endsWith('\n') || workers === '' ? '' : '\n') + mine };
      },
      readiness,
      status: () => ({
        mode: 'cluster',
        pid: process.pid,
        ready: readiness(),
        balance: config.proxy.balance,
        workers: Object.values(cluster.workers ?? {}).map((w) => ({ id: w?.id, pid: w?.process.pid, listening: w ? listening.has(w.id) : false })),
      }),
      reload: async () => reload(),
    },
    logger,
  );

  const killAll = (): void => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
  };
  installSignalHandlers({
    logger,
    flush,
    reload: () => void reload(),
    onSecondSignal: killAll,
    drain: async (signal) => {
      draining = true; // /readyz answers 503 from now on; tunnels keep flowing until drainMs
      logger.info({ event: Events.LIFECYCLE, signal, drainMs: config.proxy.drainMs }, 'draining');
      const msg: ToWorker = { type: 'portcullis:drain' };
      for (const w of Object.values(cluster.workers ?? {})) w?.send(msg);
      const forwarderDrained = forwarder?.drain(config.proxy.drainMs); // forwarder hook
      const hardStop = Date.now() + config.proxy.drainMs + 5_000;
      while (Object.keys(cluster.workers ?? {}).length > 0) {
        if (Date.now() > hardStop) killAll();
        await new Promise((r) => setTimeout(r, 50));
      }
      await forwarderDrained; // forwarder hook
      await admin.app.close();
      logger.info({ event: Events.LIFECYCLE }, 'stopped');
    },
  });

  // forwarder hook: the supervisor's own registry (workers' metrics are aggregated separately)
  try {
    forwarder = await startForwarderIfConfigured(config, logger, config.admin.metrics ? own : null);
  } catch (err) {
    logger.fatal({ event: Events.FWD_LIFECYCLE, err }, `cannot start the forwarder: ${(err as Error).message}`);
    flush();
    process.exit(1);
  }

  for (let i = 0; i < workerCount; i++) fork();
}

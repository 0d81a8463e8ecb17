import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Gateway } from '../gateway/gateway.js';
import type { Readiness, Service } from '../gateway/service.js';
import { asServiceStartError, type ServiceStartError } from '../gateway/errors.js';
import { AdminListener } from '../admin/server.js';
import { BUILT_IN_SOURCE, ConfigStore } from '../config/index.js';
import type { RuntimeMetrics } from '../metrics/runtime-metrics.js';
import { SystemdNotifier } from './sd-notify.js';
import { configChecks, installCrashGuards, installSignalHandlers, keepRestartOnly, restartOnlyChanges, tryReload, type LoadedConfig } from './shared.js';

/** Exit status when a service cannot start (78 stays "invalid configuration"). */
export const START_FAILED_EXIT = 1;

export interface RunOptions {
  cliPath: string | undefined;
  loaded: LoadedConfig;
  logger: Logger;
  flush: () => void;
  /** The data-plane services of this runtime (the proxy, or the pool of proxy workers). */
  services: Service[];
  runtime: RuntimeMetrics;
  /** The Prometheus body of this runtime (portcullis_ready is set before it is called). */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Runtime-specific fields of GET /api/v1/status. */
  status(): Record<string, unknown>;
  /** Fields for the 'configuration reloaded' line (the allowlist now in force, ...). */
  reloaded?(): Record<string, unknown>;
  /** A second SIGTERM/SIGINT: make sure nothing outlives the process. */
  onSecondSignal?: () => void;
  /**
   * A SIGTERM/SIGINT drain also stops what is still starting (the drain covers only started
   * services): the worker pool, whose workers would otherwise outlive the supervisor mid-start.
   */
  drainStarting?: (deadlineMs: number) => Promise<void>;
}

export interface RunningGateway {
  /** A service failed after the start (a replacement worker could not bind): stop, exit non-zero. */
  fail(err: ServiceStartError): Promise<void>;
}

/**
 * What the single process and the cluster supervisor share: the admin listener, readiness of all
 * services, SIGHUP/API reload (validated once, restart-only settings kept), drain on SIGTERM, and
 * a start failure said in one line with a non-zero exit.
 */
export async function runGateway(opts: RunOptions): Promise<RunningGateway> {
  const { cliPath, logger, flush, runtime } = opts;
  let running = opts.loaded;
  installCrashGuards(logger);
  const systemd = SystemdNotifier.fromEnv(logger);
  /** READY=1 only once every listener is bound and never after STOPPING=1 (a SIGHUP or SIGTERM during the start). */
  let phase: 'starting' | 'ready' | 'stopping' = 'starting';
  const stopping = (status: string): void => {
    phase = 'stopping';
    systemd?.stopping(status);
  };

  const reload = async (): Promise<Awaited<ReturnType<typeof tryReload>> & { restartRequired?: string[] }> => {
    if (phase === 'ready') systemd?.reloading();
    let restartRequired: string[] = [];
    const r = await tryReload(cliPath, logger, async (next) => {
      const restart = restartOnlyChanges(running.config, next.config);
      restartRequired = restart;
      if (restart.length) logger.warn({ event: Events.CONFIG_RELOADED, keys: restart }, 'these settings take effect on restart');
      const config = keepRestartOnly(running.config, next.config);
      await gateway.reload(config);
      running = { config, source: next.source };
      logger.level = config.log.level;
      logger.info({ event: Events.CONFIG_RELOADED, config: next.source, ...opts.reloaded?.() }, 'configuration reloaded');
    });
    runtime.configReloads.inc({ result: r.ok ? 'ok' : 'refused' });
    // A refused reload keeps the running configuration: ready either way.
    if (phase === 'ready') systemd?.ready(r.ok ? 'ready: configuration reloaded' : 'ready: reload refused, running configuration kept');
    return r.ok ? { ...r, restartRequired } : r;
  };

  const admin: AdminListener = new AdminListener(
    running.config.admin,
    {
      metrics: async () => {
        runtime.ready.set(gateway.readiness().ready ? 1 : 0);
        return opts.metrics();
      },
      readiness: (): Readiness => gateway.readiness(),
      status: () => ({ ...opts.status(), ready: gateway.readiness() }),
      reload,
      // The admin API's changes: the file this gateway was loaded from, edited with the loader's
      // checks and environment, then applied by the same reload as SIGHUP.
      config: () => running.config,
      configFile: () => (running.source === BUILT_IN_SOURCE ? null : running.source),
      openStore: (file) => ConfigStore.open(file, { checks: configChecks, env: process.env }),
    },
    logger,
  );
  const gateway: Gateway = new Gateway({ logger, services: opts.services, admin });

  let exiting = false;
  const exitAfterFailure = async (failure: ServiceStartError, drainMs: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    stopping('stopping: a service failed');
    logger.fatal({ event: Events.START_FAILED, code: failure.code, configKey: failure.configKey, cause: failure.cause }, failure.message);
    flush();
    // The same sentence, plainly, for `portcullis start` on a terminal.
    process.stderr.write(`portcullis: ${failure.message}\n`);
    if (drainMs >= 0) await gateway.drain(drainMs, { why: 'a service failed' });
    flush();
    process.exit(START_FAILED_EXIT);
  };

  installSignalHandlers({
    logger,
    flush,
    reload: () => void reload(),
    drain: async (signal) => {
      stopping(`draining (${signal})`);
      const { drainMs, drainDelayMs } = running.config.proxy;
      await Promise.all([gateway.drain(drainMs, { signal }, drainDelayMs), opts.drainStarting?.(drainMs)]);
    },
    ...(opts.onSecondSignal ? { onSecondSignal: opts.onSecondSignal } : {}),
  });

  try {
    await gateway.start();
  } catch (err) {
    // Gateway.start stopped whatever had started: nothing is left to drain.
    await exitAfterFailure(asServiceStartError('gateway', err), -1);
  }
  // Every listener is bound (the admin's, the proxy's or all workers', the forwarder's).
  if (phase === 'starting') {
    phase = 'ready';
    systemd?.ready('ready: listening');
  }
  return { fail: (err) => exitAfterFailure(err, running.config.proxy.drainMs) };
}

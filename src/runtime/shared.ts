import type { Registry } from 'prom-client';
import type { Service } from '../gateway/service.js';
import { resolveConfig, ConfigError, identityFilesCheck, type PortcullisConfig, type ConfigIssue } from '../config/index.js';
import { relayConfigCheck } from '../relay/index.js';
import { forwarderConfigCheck } from '../forwarder/routes.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { errorMessage } from '../util/errors.js';

export interface LoadedConfig {
  config: PortcullisConfig;
  source: string;
}

/**
 * Checks beyond the schema that live outside src/config: whether a required native relay loaded
 * (a fact about this host), and the forwarder's routes (its compiler is the one place that knows
 * them; check-config runs the same function).
 */
export const configChecks = [relayConfigCheck, identityFilesCheck, (c: PortcullisConfig) => forwarderConfigCheck(c)];

export function loadConfig(cliPath: string | undefined): LoadedConfig {
  return resolveConfig(cliPath, { checks: configChecks, env: process.env });
}

export type ReloadResult = { ok: true; source: string } | { ok: false; issues?: ConfigIssue[]; message: string };

/** Load and validate the file again; on failure say why and keep the running configuration. */
export async function tryReload(cliPath: string | undefined, logger: Logger, apply: (next: LoadedConfig) => void | Promise<void>): Promise<ReloadResult> {
  try {
    const next = loadConfig(cliPath);
    await apply(next);
    return { ok: true, source: next.source };
  } catch (err) {
    const issues = err instanceof ConfigError ? err.issues : undefined;
    const message = errorMessage(err);
    logger.error(
      { event: Events.BAD_CONFIG, code: 'PCL_ERR_CONFIG', issues, err: issues ? undefined : err },
      'reload refused: keeping the running configuration',
    );
    return issues ? { ok: false, issues, message } : { ok: false, message };
  }
}

/** Settings read once at start: changing them needs a restart. */
export function restartOnlyChanges(a: PortcullisConfig, b: PortcullisConfig): string[] {
  const out: string[] = [];
  if (JSON.stringify(a.proxy.listen) !== JSON.stringify(b.proxy.listen)) out.push('proxy.listen');
  if (a.proxy.workers !== b.proxy.workers) out.push('proxy.workers');
  if (a.proxy.balance !== b.proxy.balance) out.push('proxy.balance');
  // The TLS listener is bound (or not) at start; its certificate, key and CA are read again on reload.
  if (JSON.stringify(a.proxy.tls?.listen) !== JSON.stringify(b.proxy.tls?.listen)) out.push('proxy.tls.listen');
  if ((a.proxy.tls?.clientCaFile === undefined) !== (b.proxy.tls?.clientCaFile === undefined)) out.push('proxy.tls.clientCaFile');
  if (JSON.stringify(a.admin) !== JSON.stringify(b.admin)) out.push('admin');
  // The forwarder service exists or not from the start: adding or removing the section needs a restart.
  if ((a.forwarder === undefined) !== (b.forwarder === undefined)) out.push('forwarder');
  return out;
}

/** `next` with the restart-only settings kept as running, so every part (and every new worker) agrees. */
export function keepRestartOnly(running: PortcullisConfig, next: PortcullisConfig): PortcullisConfig {
  const { listen, workers, balance } = running.proxy;
  return { ...next, proxy: { ...next.proxy, listen, workers, balance }, admin: running.admin };
}

/** Process-wide safety nets: a bug in one connection must not take every tunnel down. */
export function installCrashGuards(logger: Logger): void {
  process.on('uncaughtException', (err) => logger.error({ event: Events.INTERNAL_ERROR, err }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => logger.error({ event: Events.INTERNAL_ERROR, err }, 'unhandled rejection'));
}

/**
 * SIGTERM/SIGINT drain then exit 0 (a second signal exits at once); SIGHUP reloads. Installed
 * before the listener binds: an early SIGHUP must not hit the default action (terminate).
 */
export function installSignalHandlers(opts: {
  logger: Logger;
  flush: () => void;
  drain: (signal: string) => Promise<void>;
  reload: () => void;
  onSecondSignal?: () => void;
}): void {
  const { logger, flush } = opts;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ event: Events.LIFECYCLE, signal }, 'second signal: exiting now');
      opts.onSecondSignal?.();
      flush();
      process.exit(1);
    }
    stopping = true;
    opts
      .drain(signal)
      .catch((err: unknown) => logger.error({ event: Events.INTERNAL_ERROR, err }, 'error while draining'))
      .finally(() => {
        flush();
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => opts.reload());
}

/**
 * The forwarder and, when the config has a syslog section, the syslog collector that feeds it
 * (listed after it: it starts once the forwarder's spool is open). Loaded only when configured:
 * their modules (@azure/identity, piscina, the spool) would otherwise add most of a second to
 * every start.
 */
export async function forwarderServices(config: PortcullisConfig, logger: Logger, registry: Registry | null): Promise<Service[]> {
  if (!config.forwarder) return [];
  const { createForwarderService } = await import('../forwarder/index.js');
  const forwarder = createForwarderService(config, logger, registry);
  if (!config.syslog) return [forwarder];
  const { createSyslogService } = await import('../syslog/index.js');
  return [forwarder, createSyslogService(config, logger, registry, () => forwarder.intake())];
}

/**
 * SyslogService: the syslog and CEF collector as a Service of the gateway's main process (single
 * process or cluster supervisor), beside the forwarder whose pipeline it feeds (RecordIntake:
 * the same spool, batcher, gzip, sender, retries and dead letters). It starts after the forwarder
 * and is drained by the forwarder's drain, before the spool closes, so what it read is spooled.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import type { PortcullisConfig, SyslogConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { ServiceStartError, type RecordIntake, type Readiness, type Service } from '../forwarder/index.js';
import { startListener, type Listener } from './listeners.js';
import { Pipeline } from './pipeline.js';
import { SyslogRoutes } from './routes.js';
import { SyslogMetrics } from './metrics.js';

export interface SyslogServiceOptions {
  config: PortcullisConfig;
  logger: Logger;
  registry: Registry | null;
  /** The running forwarder's intake (null until it has started). */
  intake: () => RecordIntake | null;
}

/** The compiled pool module (dist/ when running from the TypeScript sources under vitest). */
export function parseWorkerFile(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const sibling = join(here, 'parse', 'worker.js');
  if (existsSync(sibling)) return sibling;
  const built = sibling.replace(/([\\/])src([\\/]syslog[\\/])/, '$1dist$2');
  if (existsSync(built)) return built;
  throw new Error(`syslog worker script not found (${sibling}, ${built}): run npm run build`);
}

export class SyslogService implements Service {
  readonly name = 'syslog';
  #cfg: SyslogConfig;
  #routes: SyslogRoutes;
  #listeners: Listener[] = [];
  #pipeline: Pipeline | null = null;
  #metrics: SyslogMetrics | null = null;
  #started = false;
  #draining = false;
  #drained: Promise<void> | null = null;
  readonly #connections = { open: 0 };

  constructor(private readonly opts: SyslogServiceOptions) {
    if (!opts.config.syslog) throw new Error('SyslogService needs a syslog section');
    this.#cfg = opts.config.syslog;
    this.#routes = new SyslogRoutes(this.#cfg);
  }

  /** Bound addresses by listener name (after start). */
  get addresses(): ReadonlyMap<string, { protocol: string; host: string; port: number }> {
    return new Map(this.#listeners.map((l) => [l.name, { protocol: l.protocol, ...l.address }]));
  }

  async start(): Promise<void> {
    const intake = this.opts.intake();
    if (!intake) throw new ServiceStartError('syslog', 'the forwarder is not running: the syslog collector spools through it (add a forwarder section)');
    for (const [i, r] of this.#cfg.routes.entries()) {
      if (!intake.isLogsIngestionDestination(r.to))
        throw new ServiceStartError(`syslog.routes[${i}].to`, `"${r.to}" is not a logsIngestion destination of the forwarder`);
    }
    let workerFile: string;
    try {
      workerFile = parseWorkerFile();
    } catch (err) {
      throw new ServiceStartError('syslog', (err as Error).message, err);
    }
    if (this.opts.registry) {
      this.#metrics = new SyslogMetrics(this.opts.registry, {
        connections: () => this.#listeners.filter((l) => l.protocol !== 'udp').map((l) => ({ listener: l.name, open: l.open })),
        kernelDrops: () =>
          this.#listeners.flatMap((l) => {
            const d = l.kernelDrops();
            return d === null ? [] : [{ listener: l.name, drops: d }];
          }),
        pausedConnections: () => this.#listeners.reduce((n, l) => n + l.paused, 0),
      });
    }
    this.#pipeline = new Pipeline({ intake, routes: () => this.#routes, workerFile, metrics: this.#metrics, logger: this.opts.logger });
    try {
      for (const [i, l] of this.#cfg.listeners.entries()) {
        this.#listeners.push(
          await startListener(l, i, {
            config: () => this.#cfg,
            routes: () => this.#routes,
            pipeline: this.#pipeline,
            metrics: this.#metrics,
            logger: this.opts.logger,
            connections: this.#connections,
          }),
        );
      }
    } catch (err) {
      await Promise.all(this.#listeners.map((l) => l.close(0)));
      this.#listeners = [];
      throw err instanceof ServiceStartError ? err : new ServiceStartError('syslog.listeners', (err as Error).message, err);
    }
    intake.beforeDrain((deadlineMs) => this.drain(deadlineMs));
    this.#started = true;
    this.opts.logger.info(
      {
        event: Events.SYSLOG_LIFECYCLE,
        listeners: this.#listeners.map((l) => ({ name: l.name, protocol: l.protocol, ...l.address })),
        routes: this.#routes.routes.map((r) => ({ name: r.name, to: r.destination, stream: r.stream, table: r.spec.table })),
      },
      'syslog collector listening',
    );
  }

  /** Routes, filters, limits and timeouts apply at once; listeners (addresses, TLS) on restart. */
  reload(next: PortcullisConfig): void {
    const s = next.syslog;
    if (!s) {
      this.opts.logger.warn({ event: Events.SYSLOG_LIFECYCLE }, 'the syslog section was removed: the collector stops on restart; running as before until then');
      return;
    }
    if (JSON.stringify(s.listeners) !== JSON.stringify(this.#cfg.listeners) || s.udpReceiveBufferBytes !== this.#cfg.udpReceiveBufferBytes)
      this.opts.logger.warn({ event: Events.CONFIG_RELOADED, keys: ['syslog.listeners'] }, 'syslog listener settings take effect on restart');
    this.#routes = new SyslogRoutes(s);
    this.#cfg = { ...s, listeners: this.#cfg.listeners, udpReceiveBufferBytes: this.#cfg.udpReceiveBufferBytes };
  }

  /** Stops accepting and reading; what was read is spooled (until the deadline); then closes. Idempotent. */
  drain(deadlineMs: number): Promise<void> {
    this.#drained ??= (async () => {
      this.#draining = true;
      const listeners = this.#listeners.splice(0);
      await Promise.all(listeners.map((l) => l.close(deadlineMs)));
      this.#pipeline?.close();
      this.opts.logger.info({ event: Events.SYSLOG_LIFECYCLE }, 'syslog collector stopped');
    })();
    return this.#drained;
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (!this.#started) reasons.push('syslog collector not started');
    if (this.#draining) reasons.push('syslog collector draining');
    return { ready: reasons.length === 0, reasons };
  }
}

import type { PortcullisConfig } from '../config/types.js';
import { compilePolicy, describePolicy } from '../policy/index.js';
import { Resolver, type ResolverOptions } from '../dial/index.js';
import { ProxyServer, type BoundAddress, type ProxyObserver } from '../proxy/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { relayInUse } from '../relay/index.js';

/**
 * Logged once when the proxy is listening (by the single process, or by the supervisor for all
 * workers). `fields` names the addresses, the config source and the allowlist (describePolicy).
 */
export function announceListening(logger: Logger, config: PortcullisConfig, fields: Record<string, unknown>): void {
  if (config.allow.workspaces.length === 0 && config.allow.presets.length > 0) {
    logger.warn({ event: Events.LIFECYCLE }, 'no workspaces configured: preset templates allow any workspace ID; list allow.workspaces to tighten');
  }
  const { relay, warning } = relayInUse(config.proxy.relay);
  if (warning) logger.warn({ event: Events.LIFECYCLE }, warning);
  logger.info({ event: Events.LIFECYCLE, ...fields, relay, mode: config.proxy.mode }, 'proxy listening');
}

export interface GatewayOptions {
  config: PortcullisConfig;
  source: string;
  logger: Logger;
  observer?: ProxyObserver;
  /** Log 'proxy listening' (the single-process runtime); cluster workers leave it to the supervisor. */
  announce?: boolean;
}

function resolverOptions(config: PortcullisConfig): ResolverOptions {
  return { overrides: config.dns.overrides, timeoutMs: config.proxy.timeouts.dnsMs, cacheTtlMs: config.dns.cacheTtlMs };
}

/** One data-plane process: the proxy listeners with their policy, resolver and lifecycle. */
export class Gateway {
  readonly proxy: ProxyServer;
  private config: PortcullisConfig;
  private addresses: BoundAddress[] = [];

  constructor(private readonly opts: GatewayOptions) {
    this.config = opts.config;
    this.proxy = new ProxyServer({
      config: opts.config.proxy,
      policy: compilePolicy(opts.config),
      resolver: new Resolver(resolverOptions(opts.config)),
      logger: opts.logger,
      accessLog: opts.config.log.access,
      ...(opts.observer ? { observer: opts.observer } : {}),
    });
  }

  get bound(): readonly BoundAddress[] {
    return this.addresses;
  }

  async start(): Promise<BoundAddress[]> {
    this.addresses = await this.proxy.listen();
    const { logger } = this.opts;
    if (this.opts.announce === false) return this.addresses;
    announceListening(logger, this.config, { listen: this.addresses, config: this.opts.source, allow: describePolicy(this.proxy.ctx.policy) });
    return this.addresses;
  }

  /**
   * Apply a new configuration to new connections. Listener addresses are fixed for the life of
   * the process (the runtimes warn about that and other restart-only settings: see
   * restartOnlyChanges); everything else applies at once, and live tunnels are never touched.
   */
  reload(next: PortcullisConfig, source: string): void {
    const policy = compilePolicy(next);
    this.proxy.reload({ policy, resolver: this.proxy.ctx.resolver.reconfigure(resolverOptions(next)), config: { ...next.proxy, listen: this.config.proxy.listen }, accessLog: next.log.access });
    this.opts.logger.level = next.log.level;
    this.config = next;
    this.opts.logger.info({ event: Events.CONFIG_RELOADED, config: source, allow: describePolicy(policy) }, 'configuration reloaded');
  }

  async stop(): Promise<void> {
    const { logger } = this.opts;
    logger.info({ event: Events.LIFECYCLE, drainMs: this.config.proxy.drainMs, tunnels: this.proxy.openTunnels }, 'draining');
    await this.proxy.drain(this.config.proxy.drainMs);
    logger.info({ event: Events.LIFECYCLE }, 'stopped');
  }
}

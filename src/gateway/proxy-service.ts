import type { PortcullisConfig } from '../config/types.js';
import { parseListenAddress } from '../config/index.js';
import { compilePolicy, describePolicy } from '../policy/index.js';
import { Resolver, type ResolverOptions } from '../dial/index.js';
import { ProxyServer, type BoundAddress, type ProxyObserver } from '../proxy/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { relayInUse } from '../relay/index.js';
import { ServiceStartError, listenStartError } from './errors.js';
import { errorCode, errorMessage } from '../util/errors.js';
import type { ProxyConfig } from '../config/types.js';
import type { Readiness, Service } from './service.js';

/**
 * Logged once when the proxy is listening: by the proxy service in the single process, or by the
 * supervisor once every worker listens. `fields` names the addresses, the config source and the
 * allowlist (describePolicy).
 */
export function announceListening(logger: Logger, config: PortcullisConfig, fields: Record<string, unknown>): void {
  if (config.allow.workspaces.length === 0 && config.allow.presets.length > 0) {
    logger.warn({ event: Events.LIFECYCLE }, 'no workspaces configured: preset templates allow any workspace ID; list allow.workspaces to tighten');
  }
  const { relay, warning } = relayInUse(config.proxy.relay);
  if (warning) logger.warn({ event: Events.LIFECYCLE }, warning);
  logger.info({ event: Events.LIFECYCLE, ...fields, relay, mode: config.proxy.mode }, 'proxy listening');
}

export interface ProxyServiceOptions {
  config: PortcullisConfig;
  source: string;
  logger: Logger;
  observer?: ProxyObserver;
  /** Log 'proxy listening' (the single process); cluster workers leave it to the supervisor. */
  announce: boolean;
}

function resolverOptions(config: PortcullisConfig): ResolverOptions {
  return { overrides: config.dns.overrides, timeoutMs: config.proxy.timeouts.dnsMs, cacheTtlMs: config.dns.cacheTtlMs };
}

/** The proxy listener(s) of one data-plane process, with their policy and resolver, as a Service. */
export class ProxyService implements Service {
  readonly name = 'proxy';
  readonly server: ProxyServer;
  private config: PortcullisConfig;
  private addresses: BoundAddress[] = [];
  private state: 'idle' | 'listening' | 'draining' = 'idle';

  constructor(private readonly opts: ProxyServiceOptions) {
    this.config = opts.config;
    this.server = new ProxyServer({
      config: opts.config.proxy,
      policy: compilePolicy(opts.config),
      resolver: new Resolver(resolverOptions(opts.config)),
      logger: opts.logger,
      accessLog: opts.config.log.access,
      ...(opts.observer ? { observer: opts.observer } : {}),
      ...(opts.config.upstreamProxy ? { upstreamProxy: opts.config.upstreamProxy } : {}),
    });
  }

  get bound(): readonly BoundAddress[] {
    return this.addresses;
  }

  async start(): Promise<void> {
    try {
      this.server.loadIdentity(this.config.proxy);
    } catch (err) {
      throw new ServiceStartError(errorCode(err) === 'PCL_ERR_PROXY_AUTH_FILE' ? 'proxy.auth.htpasswdFile' : 'proxy.tls', errorMessage(err), err);
    }
    try {
      this.addresses = await this.server.listen();
    } catch (err) {
      // The error names the address Node tried; the first configured one stands in otherwise.
      const port = typeof err === 'object' && err !== null && 'port' in err ? err.port : undefined;
      const tlsSpec = (this.config.proxy.tls?.listen ?? []).find((s) => parseListenAddress(s).port === port);
      if (tlsSpec !== undefined) throw listenStartError('proxy.tls.listen', parseListenAddress(tlsSpec), err);
      throw listenStartError('proxy.listen', parseListenAddress(this.config.proxy.listen[0] ?? ''), err);
    }
    this.state = 'listening';
    if (!this.opts.announce) return;
    announceListening(this.opts.logger, this.config, { listen: this.addresses, config: this.opts.source, allow: describePolicy(this.server.ctx.policy) });
  }

  /**
   * New policy, resolver, limits and timeouts apply to new connections at once; live tunnels are
   * never touched. Listener addresses are fixed for the life of the process.
   */
  reload(next: PortcullisConfig): void {
    const policy = compilePolicy(next);
    this.server.reload({
      policy,
      resolver: this.server.ctx.resolver.reconfigure(resolverOptions(next)),
      config: keptListeners(this.config.proxy, next.proxy),
      accessLog: next.log.access,
      upstreamProxy: next.upstreamProxy,
    });
    this.config = next;
  }

  async drain(deadlineMs: number): Promise<void> {
    this.state = 'draining';
    await this.server.drain(deadlineMs);
  }

  readiness(): Readiness {
    if (this.state === 'listening') return { ready: true, reasons: [] };
    return { ready: false, reasons: [this.state === 'draining' ? 'draining' : 'proxy listener not bound'] };
  }
}

/**
 * `next` with the running listeners: addresses are bound once. The TLS listener's certificate,
 * key and CA are read again on reload; adding or removing it takes a restart.
 */
function keptListeners(running: ProxyConfig, next: ProxyConfig): ProxyConfig {
  const proxy: ProxyConfig = { ...next, listen: running.listen };
  if (running.tls === undefined) delete proxy.tls;
  else proxy.tls = { ...(next.tls ?? running.tls), listen: running.tls.listen };
  return proxy;
}

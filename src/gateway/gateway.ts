import type { PortcullisConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { asServiceStartError } from './errors.js';
import type { Readiness, Service } from './service.js';

export interface GatewayOptions {
  logger: Logger;
  /** Started in order, reloaded in order, drained together. */
  services: Service[];
  /**
   * The listener that serves /readyz and /metrics: started before the services and drained after
   * them, so a load balancer sees the 503 for the whole drain.
   */
  admin?: Service;
}

/**
 * Runs a list of services with one lifecycle: the single process and the cluster supervisor run
 * the admin listener plus their data-plane services (the proxy, or the pool of proxy workers);
 * a cluster worker runs its proxy listener.
 */
export class Gateway {
  private readonly started: Service[] = [];
  private draining = false;

  constructor(private readonly opts: GatewayOptions) {}

  private get all(): Service[] {
    return this.opts.admin ? [this.opts.admin, ...this.opts.services] : this.opts.services;
  }

  /**
   * Start every service; the first that fails stops the ones already started and its
   * ServiceStartError is thrown (the caller says it in one line and exits non-zero).
   */
  async start(): Promise<void> {
    for (const service of this.all) {
      try {
        await service.start();
      } catch (err) {
        const failure = asServiceStartError(service.name, err);
        await Promise.allSettled(this.started.splice(0).map((s) => s.drain(0)));
        throw failure;
      }
      this.started.push(service);
    }
  }

  /** Hand a validated configuration to every service, in start order. */
  async reload(next: PortcullisConfig): Promise<void> {
    for (const service of this.all) await service.reload(next);
  }

  /**
   * Drain the services together for up to deadlineMs, then the admin listener. With delayMs,
   * readiness answers 'draining' that long before the services stop accepting, so a load balancer
   * takes the node out of rotation while it still serves what is sent to it.
   */
  async drain(deadlineMs: number, fields: Record<string, unknown> = {}, delayMs = 0): Promise<void> {
    this.draining = true; // readiness answers 'draining' from here on
    const { logger } = this.opts;
    if (delayMs > 0) {
      logger.info({ event: Events.LIFECYCLE, ...fields, drainDelayMs: delayMs }, 'not ready: the listeners close after the drain delay');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    const admin = this.opts.admin;
    const services = this.started.filter((s) => s !== admin);
    const draining = Promise.allSettled(services.map((s) => s.drain(deadlineMs)));
    // Logged once the services have stopped accepting: whoever reads it may rely on that.
    logger.info({ event: Events.LIFECYCLE, ...fields, drainMs: deadlineMs }, 'draining');
    const results = await draining;
    if (admin && this.started.includes(admin)) results.push(...(await Promise.allSettled([admin.drain(0)])));
    for (const r of results) if (r.status === 'rejected') logger.error({ event: Events.INTERNAL_ERROR, err: r.reason }, 'error while draining');
    logger.info({ event: Events.LIFECYCLE }, 'stopped');
  }

  /** Ready when every service is; the reasons of all that are not, each once. */
  readiness(): Readiness {
    const reasons = new Set<string>();
    if (this.draining) reasons.add('draining');
    for (const s of this.all) for (const r of s.readiness().reasons) reasons.add(r);
    return { ready: reasons.size === 0, reasons: [...reasons] };
  }
}

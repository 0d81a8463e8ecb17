/**
 * The forwarder's start/stop for the current runtimes (single process and cluster supervisor),
 * kept in one place so src/runtime/* only call these. The lead rewires this onto the services
 * list at merge.
 */
import type { Registry } from 'prom-client';
import type { PortcullisConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { createForwarderService } from './index.js';
import type { ForwarderService } from './service.js';
import type { Readiness } from './service-contract.js';

/** Starts the forwarder when the config has a forwarder section; null otherwise. Throws ServiceStartError. */
export async function startForwarderIfConfigured(config: PortcullisConfig, logger: Logger, registry: Registry | null): Promise<ForwarderService | null> {
  if (!config.forwarder) return null;
  const service = createForwarderService(config, logger, registry);
  await service.start();
  return service;
}

export function forwarderReadiness(service: ForwarderService | null): Readiness {
  return service ? service.readiness() : { ready: true, reasons: [] };
}

export function reloadForwarder(service: ForwarderService | null, next: PortcullisConfig, logger: Logger): void {
  if (!service) {
    if (next.forwarder) logger.warn({ event: Events.FWD_LIFECYCLE }, 'a forwarder section was added: it starts on restart');
    return;
  }
  service.reload(next);
}

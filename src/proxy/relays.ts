/**
 * upstreamProxy as the proxy uses it: the relay dialer and its bypass list, built again on every
 * reload (new relays, credentials and timeouts apply to new connections at once; established
 * tunnels keep the socket they have), with the relays' health carried across reloads.
 */
import type { ProxyConfig, UpstreamProxyConfig } from '../config/types.js';
import { parseRelayUrl } from '../config/checks.js';
import { basicAuth, BypassList, RelayDialer, type RelayEndpoint, type RelayHealth } from '../dial/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import type { RelayEvent } from './access.js';
import type { RelayChoice } from './route.js';

/** The relays in config order, with their Proxy-Authorization value (the loader resolved passwordFile/passwordEnv). */
export function relayEndpoints(up: UpstreamProxyConfig): RelayEndpoint[] {
  const out: RelayEndpoint[] = [];
  for (const p of up.proxies) {
    const u = parseRelayUrl(p.url);
    // The loader refuses a config with a bad url; a caller that built one in code loses that relay.
    if (!u.ok) continue;
    const auth = p.username !== undefined && p.password !== undefined ? basicAuth(p.username, p.password) : null;
    out.push({ label: u.hostPort, host: u.host, port: u.port, auth });
  }
  return out;
}

export interface RelaySetup extends RelayChoice {
  readonly dialer: RelayDialer;
}

/** The relay choice for this config, or null without upstreamProxy. */
export function buildRelays(up: UpstreamProxyConfig | undefined, proxy: ProxyConfig, health: RelayHealth): RelaySetup | null {
  if (up === undefined) return null;
  const dialer = new RelayDialer({
    relays: relayEndpoints(up),
    connectMs: up.connectMs,
    backoffMs: up.backoffMs,
    headersMs: proxy.timeouts.upstreamResponseMs,
    bodyMs: proxy.timeouts.idleMs,
    health,
  });
  return { dialer, bypass: new BypassList(up.bypass) };
}

/** The log line of a relay event (failures and tunnels carried are counted, not logged: the refusal's record says it). */
export function logRelayEvent(logger: Logger, e: RelayEvent): void {
  if (e.type === 'down') {
    logger.warn(
      { event: Events.RELAY_DOWN, proxy: e.relay, reason: e.reason, backoffMs: e.backoffMs, detail: e.message },
      `relay proxy ${e.relay} is down: skipped for ${e.backoffMs} ms`,
    );
  } else if (e.type === 'up') {
    logger.info({ event: Events.RELAY_UP, proxy: e.relay }, `relay proxy ${e.relay} is up again`);
  }
}

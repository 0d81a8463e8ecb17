import type { DestinationRuleConfig, PortcullisConfig } from '../../src/config/types.js';

/** The client address decide() is asked for (the destination policy does not look at it yet). */
export const CLIENT = '10.1.2.3';

export type RuleInput = Partial<DestinationRuleConfig> & { hosts: string[] };

/** A full config with defaults; only the policy-relevant parts vary. */
export function makeConfig(opts: {
  mode?: 'enforce' | 'report';
  presets?: PortcullisConfig['allow']['presets'];
  workspaces?: PortcullisConfig['allow']['workspaces'];
  regions?: string[];
  rules?: RuleInput[];
  clientsAllow?: string[];
  clientsDeny?: string[];
  groups?: PortcullisConfig['clients']['groups'];
}): PortcullisConfig {
  return {
    proxy: {
      listen: ['127.0.0.1:0'],
      mode: opts.mode ?? 'enforce',
      timeouts: { connectMs: 1, dnsMs: 1, idleMs: 1, maxTunnelMs: 0, headersMs: 1, upstreamResponseMs: 1 },
      limits: { maxConnections: 1, maxConnectionsPerClient: 1, maxHeaderBytes: 16384 },
      drainMs: 1,
      drainDelayMs: 0,
      workers: 1,
      balance: 'kernel',
      relay: 'auto',
      tlsInspection: { enabled: true, requireTls: false, sniMustMatch: true, minVersion: '1.2', peekTimeoutMs: 10000 },
    },
    allow: {
      presets: opts.presets ?? [],
      workspaces: opts.workspaces ?? [],
      regions: opts.regions ?? [],
      rules: (opts.rules ?? []).map((r, i) => ({
        name: r.name ?? `rule${i}`,
        hosts: r.hosts,
        ports: r.ports ?? [443],
        allowPrivate: r.allowPrivate ?? false,
        mode: r.mode ?? 'enforce',
      })),
    },
    clients: {
      ...(opts.clientsAllow ? { allow: opts.clientsAllow } : {}),
      deny: opts.clientsDeny ?? [],
      certificates: { subjects: [], thumbprintsSha256: [] },
      groups: opts.groups ?? [],
    },
    dns: { overrides: {}, cacheTtlMs: 0 },
    admin: { listen: '127.0.0.1:0', metrics: false },
    log: { level: 'silent', access: false },
  };
}

export const WS1 = '11111111-2222-3333-4444-555555555555';
export const WS2 = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';

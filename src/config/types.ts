/**
 * The validated, defaults-filled configuration. The YAML file and the JSON Schema in
 * config/portcullis.schema.json describe the same shape; keep them in step.
 */
export type EnforcementMode = 'enforce' | 'report';
export type CloudPreset = 'azure-public' | 'azure-usgov' | 'azure-china';

export interface DestinationRuleConfig {
  /** Shown in logs and as the metrics label: keep it short and stable. */
  name: string;
  /** Exact hosts, `*.suffix` wildcards, `{workspaceId}`/`{region}` templates, IP literals or CIDRs. */
  hosts: string[];
  /** Allowed destination ports. Default [443]. */
  ports: number[];
  /** Resolved private/loopback/link-local… addresses are allowed for this rule (Private Link). */
  allowPrivate: boolean;
  /** `report`: port / private-address refusals for this rule are logged but let through. */
  mode: EnforcementMode;
}

export interface WorkspaceConfig {
  id: string;
  region?: string;
}

export interface ProxyConfig {
  /** `host:port` strings; IPv6 hosts in brackets: `[::]:8080`. */
  listen: string[];
  /** Global mode: `report` lets every policy refusal through and logs it. */
  mode: EnforcementMode;
  timeouts: {
    /** TCP connect to the destination. */
    connectMs: number;
    /** DNS resolution of the destination. */
    dnsMs: number;
    /** A tunnel or keep-alive connection with no bytes either way is closed after this. */
    idleMs: number;
    /** Hard cap on a tunnel's life; 0 = none. */
    maxTunnelMs: number;
    /** The client must finish sending request headers within this. */
    headersMs: number;
    /** Plain-HTTP: the upstream must answer within this. */
    upstreamResponseMs: number;
  };
  limits: {
    /** Open client connections in total (per process). Over it: 503 + Retry-After. */
    maxConnections: number;
    /** Open client connections per source IP (per process). Over it: 429 + Retry-After. */
    maxConnectionsPerClient: number;
    /** Request line + headers. Over it: 431. */
    maxHeaderBytes: number;
  };
  /** On SIGTERM: how long live tunnels may go on before they are closed. */
  drainMs: number;
  /** Data-plane processes: 0 = one per core, 1 = single process. */
  workers: number;
  /** kernel (default): workers accept themselves; round-robin: the supervisor hands out connections. */
  balance: 'round-robin' | 'kernel';
  /** Tunnel byte relay: auto (native when built), native (required), js (Node streams). */
  relay: 'auto' | 'native' | 'js';
}

export interface AllowConfig {
  presets: CloudPreset[];
  workspaces: WorkspaceConfig[];
  /** Extra regions for `{region}` templates, beyond the workspaces' own. */
  regions: string[];
  rules: DestinationRuleConfig[];
}

export interface ClientsConfig {
  /** Source CIDRs allowed; undefined = any source. */
  allow?: string[];
  deny: string[];
}

export interface DnsConfig {
  /** host → IP (like /etc/hosts). Exact host names, normalised like targets. */
  overrides: Record<string, string>;
  /** Cache positive answers this long (0 = no cache). */
  cacheTtlMs: number;
}

export interface AdminConfig {
  listen: string;
  token?: string;
  /** Collect and serve Prometheus metrics. */
  metrics: boolean;
  tls?: { certFile: string; keyFile: string };
}

export interface LogConfig {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** One record per tunnel/request. */
  access: boolean;
}

export interface PortcullisConfig {
  proxy: ProxyConfig;
  allow: AllowConfig;
  clients: ClientsConfig;
  dns: DnsConfig;
  admin: AdminConfig;
  log: LogConfig;
}

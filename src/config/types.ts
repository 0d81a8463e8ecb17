/**
 * The validated, defaults-filled configuration. The YAML file and the JSON Schema in
 * config/portcullis.schema.json describe the same shape; keep them in step.
 */
export type EnforcementMode = 'enforce' | 'report';
/** Azure Monitor agents' endpoints, one preset per cloud. */
export type CloudPreset = 'azure-public' | 'azure-usgov' | 'azure-china';
/**
 * Other agents on the same servers, one preset per cloud where the service exists: a bare name is
 * the public cloud (`azure-arc`), a suffix names a sovereign one (`azure-arc-usgov`).
 */
export type ServicePreset = 'azure-arc' | 'azure-arc-usgov' | 'azure-arc-china' | 'defender-endpoint' | 'defender-endpoint-usgov';
export type PresetName = CloudPreset | ServicePreset;

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
  /** This rule's TLS inspection settings; absent keys take proxy.tlsInspection's. */
  tls?: RuleTlsConfig;
}

/** TLS protocol versions as the config names them. */
export type TlsVersionSetting = '1.0' | '1.1' | '1.2' | '1.3';

export interface RuleTlsConfig {
  /** Refuse tunnels whose first bytes are not a TLS handshake. */
  require?: boolean;
  /** Refuse a ClientHello whose SNI is not the CONNECT host. */
  sniMustMatch?: boolean;
  /** Refuse a ClientHello offering only versions below this. */
  minVersion?: TlsVersionSetting;
  /** Refuse a handshake in which the server chooses a version above this (ServerHello). */
  maxVersion?: TlsVersionSetting;
}

/** proxy.tlsInspection: look at each tunnel's TLS handshake without decrypting it (docs/tls-inspection.md). */
export interface TlsInspectionConfig {
  enabled: boolean;
  requireTls: boolean;
  sniMustMatch: boolean;
  minVersion: TlsVersionSetting;
  /** Wait for the client's first bytes (and a TLS 1.2 handshake up to the client certificate) this long. */
  peekTimeoutMs: number;
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
    /**
     * Open client connections in total, gateway-wide (each cluster worker enforces its share; the
     * file-descriptor budget may allow fewer). Over it: 503 + Retry-After.
     */
    maxConnections: number;
    /** Open client connections per source IP, gateway-wide (each worker enforces its share). Over it: 429 + Retry-After. */
    maxConnectionsPerClient: number;
    /** Request line + headers. Over it: 431. */
    maxHeaderBytes: number;
  };
  /** On SIGTERM: how long live tunnels may go on before they are closed. */
  drainMs: number;
  /** On SIGTERM: /readyz is 503 and connections are still taken for this long before the listeners close. */
  drainDelayMs: number;
  /** Data-plane processes: 0 = one per core, 1 = single process. */
  workers: number;
  /** kernel (default): workers accept themselves; round-robin: the supervisor hands out connections. */
  balance: 'round-robin' | 'kernel';
  /** Tunnel byte relay: auto (native when built), native (required), js (Node streams). */
  relay: 'auto' | 'native' | 'js';
  /** Proxy Basic authentication; absent = none. */
  auth?: ProxyAuthConfig;
  /** A TLS proxy listener (clients use https://gateway:9443 as their proxy); absent = none. */
  tls?: ProxyTlsConfig;
  /** Look at the TLS handshake inside each tunnel (SNI, versions, TLS 1.2 client certificate). */
  tlsInspection: TlsInspectionConfig;
}

export interface ProxyAuthConfig {
  /** user:hash lines (bcrypt, $apr1$, {SHA}), as Squid's basic_ncsa_auth reads them. */
  htpasswdFile: string;
  realm: string;
  /** Failed attempts per client address per minute (per process) before 429; 0 = no limit. */
  maxFailuresPerMinute: number;
  /** How long a successful verification is remembered; 0 = not at all. */
  cacheTtlMs: number;
}

export interface ProxyTlsConfig {
  listen: string[];
  certFile: string;
  keyFile: string;
  /** Ask for client certificates chaining to this CA. */
  clientCaFile?: string;
  /** Refuse connections without one (needs clientCaFile). */
  requireClientCert: boolean;
}

export interface AllowConfig {
  presets: PresetName[];
  workspaces: WorkspaceConfig[];
  /** Extra regions for `{region}` templates, beyond the workspaces' own. */
  regions: string[];
  rules: DestinationRuleConfig[];
}

export interface ClientsConfig {
  /** Source CIDRs allowed; undefined = any source. */
  allow?: string[];
  deny: string[];
  /** Allowed client certificates (TLS proxy listener, and agent certificates seen in TLS 1.2 tunnels); both empty = no check. */
  certificates: { subjects: string[]; thumbprintsSha256: string[] };
  /** Per-identity destination allowlists; an identity in no group may reach every rule. */
  groups: ClientGroupConfig[];
}

export interface ClientGroupConfig {
  name: string;
  users: string[];
  subjects: string[];
  cidrs: string[];
  /** allow.rules names, or preset names from allow.presets. */
  rules: string[];
}

export interface UpstreamProxyEntry {
  /** `http://host:port`. */
  url: string;
  username?: string;
  /** Resolved from passwordFile / passwordEnv by the loader. Never logged. */
  password?: string;
  passwordFile?: string;
  passwordEnv?: string;
}

/** Relay (corporate) proxies; absent = dial destinations directly. */
export interface UpstreamProxyConfig {
  proxies: UpstreamProxyEntry[];
  /** Destinations dialled directly: hosts, `*.suffix`, IP literals, CIDRs. */
  bypass: string[];
  /** A relay that failed is skipped this long. */
  backoffMs: number;
  /** Connect + the relay's CONNECT answer. */
  connectMs: number;
}

export interface DnsConfig {
  /** host → IP (like /etc/hosts). Exact host names, normalised like targets. */
  overrides: Record<string, string>;
  /** Cache positive answers this long (0 = no cache). */
  cacheTtlMs: number;
}

export interface AdminConfig {
  listen: string;
  /** The management API's bearer token (resolved from tokenFile / tokenEnv by the loader). */
  token?: string;
  /** A file holding the token (read at start and at every reload). */
  tokenFile?: string;
  /** An environment variable holding the token. */
  tokenEnv?: string;
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
  upstreamProxy?: UpstreamProxyConfig;
  dns: DnsConfig;
  admin: AdminConfig;
  log: LogConfig;
  /** The telemetry forwarder; absent = disabled. Shapes in src/forwarder/config.ts. */
  forwarder?: ForwarderConfig;
  /** The syslog and CEF collector; absent = disabled. Needs a forwarder section (its spool and destinations). */
  syslog?: SyslogConfig;
}

// ---- syslog (issue 10) ----

export type SyslogProtocol = 'udp' | 'tcp' | 'tls' | 'relp';
export type SyslogSeverityName = 'emerg' | 'alert' | 'crit' | 'err' | 'warning' | 'notice' | 'info' | 'debug';

export interface SyslogListenerConfig {
  name: string;
  protocol: SyslogProtocol;
  listen: string;
  /** Required for tls; optional for relp (RELP over TLS, as omrelp's tls="on"). */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string; requireClientCert: boolean };
}

export interface SyslogRouteConfig {
  name: string;
  match: { listener?: string[]; cidrs?: string[]; facility?: string[]; cefVendor?: string; cefProduct?: string };
  /** A logsIngestion destination of the forwarder. */
  to: string;
  stream: string;
  table?: 'Syslog' | 'CommonSecurityLog';
  filter: { dropFacilities: string[]; minSeverity: SyslogSeverityName };
}

export interface SyslogConfig {
  listeners: SyslogListenerConfig[];
  maxMessageBytes: number;
  /** SO_RCVBUF of UDP listeners; 0 = the OS default. */
  udpReceiveBufferBytes: number;
  idleTimeoutMs: number;
  maxConnections: number;
  routes: SyslogRouteConfig[];
}

// ---- forwarder (issue 9) ----

export type FsyncMode = 'always' | 'interval' | 'never';

export interface ForwarderTlsConfig {
  certFile: string;
  keyFile: string;
  /** Ask clients for a certificate signed by this CA (client-certificate identities). */
  clientCaFile?: string;
}

export type ForwarderCredentialConfig =
  /** The client secret from a file (read again at every token refresh) or an environment variable: exactly one. */
  | { name: string; type: 'clientSecret'; tenantId: string; clientId: string; secretFile?: string; secretEnv?: string }
  | { name: string; type: 'clientCertificate'; tenantId: string; clientId: string; certificateFile: string }
  | { name: string; type: 'managedIdentity'; clientId?: string };

/** `ordered`: this destination's streams override batch.ordered (a syslog destination over a slow link, say). */
export type ForwarderDestinationConfig =
  | { name: string; type: 'logsIngestion'; endpoint: string; dcrId: string; credential: string; ordered?: boolean }
  | { name: string; type: 'dataCollector'; workspaceId: string; sharedKeyFile?: string; sharedKeyEnv?: string; endpoint?: string; ordered?: boolean };

export interface ForwarderRouteConfig {
  name: string;
  /** Inbound: a Logs Ingestion (dcrId + stream) or a Data Collector (workspaceId + logType) upload. */
  from: { dcrId: string; stream: string } | { workspaceId: string; logType: string };
  /** Destination name. */
  to: string;
  /** Upstream stream for a logsIngestion destination (default: the inbound stream; required when translating from a logType). */
  stream?: string;
}

export interface ForwarderIdentityConfig {
  name: string;
  /** SHA-256 (hex) of a gateway-issued API key, sent by clients as `Authorization: Bearer <key>`. */
  apiKeySha256?: string;
  /** The workspace key a Data Collector client signs with. */
  sharedKey?: { workspaceId: string; keyFile?: string; keyEnv?: string };
  clientCert?: { subjects?: string[]; thumbprintsSha256?: string[] };
  /** Route names this identity may send to. */
  routes: string[];
}

export interface ForwarderConfig {
  listen: string;
  tls?: ForwarderTlsConfig;
  /** Explicit opt-out of TLS on the ingest listener (warned at start). */
  plaintext: boolean;
  spool: { dir: string; maxBytes: number; fsync: FsyncMode; fsyncIntervalMs: number; segmentBytes: number };
  /** Default: <spool.dir>/../dead-letter. */
  deadLetterDir?: string;
  /** ordered: one batch in flight per stream, so records land in the order they were accepted. */
  batch: { maxBytes: number; maxAgeMs: number; gzipLevel: number; ordered: boolean };
  pool: { threads: number };
  limits: {
    /** Logs Ingestion API upload, decoded (the service's own limit is 1 MiB). */
    logsIngestionBytes: number;
    /** Data Collector API upload (the service's limit is 30 MB). */
    dataCollectorBytes: number;
    /** An upload that sends no byte for this long is answered 408 and closed. */
    bodyIdleMs: number;
    /** x-ms-date may differ from the gateway's clock by at most this. */
    clockSkewMs: number;
    /** Answer 429/503 while the process's RSS is above this (0 = no check). */
    maxRssBytes: number;
    /** Upload bytes in the pipeline (read, decoded, not yet spooled) at once; over it, new uploads are refused. */
    maxInflightBytes: number;
    /** Retry-After (seconds) sent with 429/503 refusals. */
    retryAfterS: number;
  };
  upstream: {
    caFile?: string;
    authorityHost: string;
    /** Whole request (connect + answer) to the upstream. */
    timeoutMs: number;
    /** Upper bound of the adaptive concurrency per destination. */
    maxConcurrency: number;
    /** Requests per minute per destination (the per-DCR limit is 12,000). */
    maxRequestsPerMinute: number;
    retry: { baseMs: number; maxMs: number };
  };
  credentials: ForwarderCredentialConfig[];
  destinations: ForwarderDestinationConfig[];
  routes: ForwarderRouteConfig[];
  identities: ForwarderIdentityConfig[];
}

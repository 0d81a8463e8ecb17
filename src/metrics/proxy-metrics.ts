import client, { type Registry } from 'prom-client';
import type { AccessRecord, ProxyObserver } from '../proxy/index.js';

/** Latency buckets (seconds) for connect and DNS: loopback µs up to a slow 10 s connect. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Tunnel lifetimes: sub-second CRL fetches up to agents that hold a tunnel for a day. */
const DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** What metrics read from the proxy at scrape time. */
export interface ProxyState {
  /** Bytes of tunnels still open, so long-lived tunnels show traffic as it flows. */
  forEachOpen(fn: (rule: string, up: number, down: number) => void): void;
  /** The connection limits in force (they change on reload). */
  readonly limits: { readonly maxConnections: number; readonly maxConnectionsPerClient: number };
}

const REJECTION_REASONS = new Set([
  'client_denied', 'host_not_allowed', 'port_not_allowed', 'ip_literal', 'private_address', 'bad_request', 'not_proxy_request',
  'method_not_allowed', 'unsupported_transfer_encoding', 'header_too_large', 'header_timeout', 'limit_total', 'limit_client', 'draining',
]);

const TIMEOUT_KIND: Partial<Record<string, string>> = {
  connect_timeout: 'connect',
  dns_timeout: 'dns',
  upstream_timeout: 'upstream_response',
  header_timeout: 'header',
};

/**
 * The data plane's metrics, registered in one registry (the default one in cluster workers, so
 * prom-client's AggregatorRegistry in the primary can sum them across processes). Labels are
 * bounded: rule names come from the config, reasons and verdicts from closed sets.
 */
export class ProxyMetrics implements ProxyObserver {
  private readonly activeConnections: client.Gauge;
  private readonly requests: client.Counter;
  private readonly rejections: client.Counter;
  private readonly errors: client.Counter;
  private readonly limitHits: client.Counter;
  private readonly timeouts: client.Counter;
  private readonly openTunnels: client.Gauge;
  private readonly tunnelDuration: client.Histogram;
  private readonly connectLatency: client.Histogram;
  private readonly dnsLatency: client.Histogram;
  private readonly closedBytes = new Map<string, { up: number; down: number }>();
  private readonly recentClients = new Map<string, number>();
  private state: ProxyState | null = null;
  private connections = 0;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.activeConnections = new client.Gauge({
      name: 'portcullis_client_connections',
      help: 'Open client connections to the proxy listener (Log Analytics gateway: Active Client Connection).',
      registers,
      collect: () => this.activeConnections.set(this.connections),
    });
    this.requests = new client.Counter({
      name: 'portcullis_requests_total',
      help: 'Tunnels and forwarded requests by outcome: kind (tunnel|http), verdict (allow|report|deny|error), reason, destination rule.',
      labelNames: ['kind', 'verdict', 'reason', 'rule'],
      registers,
    });
    this.rejections = new client.Counter({
      name: 'portcullis_rejections_total',
      help: 'Requests refused by policy, limits or protocol checks, by reason (Log Analytics gateway: Rejection Count).',
      labelNames: ['reason'],
      registers,
    });
    this.errors = new client.Counter({
      name: 'portcullis_errors_total',
      help: 'Network errors towards destinations (DNS, connect, upstream), by reason (Log Analytics gateway: Error Count).',
      labelNames: ['reason'],
      registers,
    });
    this.limitHits = new client.Counter({
      name: 'portcullis_limit_hits_total',
      help: 'Connections refused by a connection limit: limit (total|client).',
      labelNames: ['limit'],
      registers,
    });
    this.timeouts = new client.Counter({
      name: 'portcullis_timeouts_total',
      help: 'Connections or tunnels closed by a timeout: kind (connect|dns|header|idle|lifetime|upstream_response).',
      labelNames: ['kind'],
      registers,
    });
    this.openTunnels = new client.Gauge({
      name: 'portcullis_open_tunnels',
      help: 'Currently open CONNECT tunnels per destination rule.',
      labelNames: ['rule'],
      registers,
    });
    this.tunnelDuration = new client.Histogram({
      name: 'portcullis_tunnel_duration_seconds',
      help: 'Lifetime of established CONNECT tunnels, per destination rule.',
      labelNames: ['rule'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.connectLatency = new client.Histogram({
      name: 'portcullis_upstream_connect_seconds',
      help: 'TCP connect time to the destination, per destination rule.',
      labelNames: ['rule'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.dnsLatency = new client.Histogram({
      name: 'portcullis_dns_seconds',
      help: 'Destination name resolution time (overrides and cache hits included).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const self = this;
    new client.Gauge({
      name: 'portcullis_connection_limit',
      help: 'Configured connection limit per process: limit (total = proxy.limits.maxConnections, client = maxConnectionsPerClient); summed over workers in cluster mode.',
      labelNames: ['limit'],
      registers,
      collect() {
        if (!self.state) return;
        this.set({ limit: 'total' }, self.state.limits.maxConnections);
        this.set({ limit: 'client' }, self.state.limits.maxConnectionsPerClient);
      },
    });
    new client.Counter({
      name: 'portcullis_bytes_total',
      help: 'Payload bytes through tunnels and forwarded requests: direction (up = client to destination, down = destination to client), rule. Includes open tunnels.',
      labelNames: ['direction', 'rule'],
      registers,
      collect() {
        const totals = new Map<string, { up: number; down: number }>();
        for (const [rule, b] of self.closedBytes) totals.set(rule, { up: b.up, down: b.down });
        self.state?.forEachOpen((rule, up, down) => {
          const t = totals.get(rule) ?? { up: 0, down: 0 };
          t.up += up;
          t.down += down;
          totals.set(rule, t);
        });
        this.reset();
        for (const [rule, t] of totals) {
          this.inc({ direction: 'up', rule }, t.up);
          this.inc({ direction: 'down', rule }, t.down);
        }
      },
    });
  }

  /** Where to read open tunnels' bytes and the limits from. */
  attach(state: ProxyState): void {
    this.state = state;
  }

  /** Distinct client addresses seen within `windowMs` (for the cluster-wide union in the primary). */
  clientsSeenWithin(windowMs: number): string[] {
    const cutoff = Date.now() - windowMs;
    const out: string[] = [];
    for (const [ip, at] of this.recentClients) {
      if (at >= cutoff) out.push(ip);
      else this.recentClients.delete(ip);
    }
    return out;
  }

  clientConnected(ip: string): void {
    this.connections++;
    this.recentClients.set(ip, Date.now());
  }

  clientDisconnected(): void {
    this.connections--;
  }

  tunnelOpened(rule: string): void {
    this.openTunnels.inc({ rule });
  }

  tunnelClosed(rule: string): void {
    this.openTunnels.dec({ rule });
  }

  upstreamConnected(rule: string, dnsMs: number, connectMs: number): void {
    this.connectLatency.observe({ rule }, connectMs / 1000);
    this.dnsLatency.observe(dnsMs / 1000);
  }

  access(rec: AccessRecord): void {
    const rule = rec.rule ?? 'none';
    const reason = rec.reason ?? 'none';
    this.requests.inc({ kind: rec.kind, verdict: rec.verdict, reason, rule });
    if (rec.verdict === 'deny' && rec.reason && REJECTION_REASONS.has(rec.reason)) {
      this.rejections.inc({ reason: rec.reason });
      if (rec.reason === 'limit_total') this.limitHits.inc({ limit: 'total' });
      else if (rec.reason === 'limit_client') this.limitHits.inc({ limit: 'client' });
    } else if (rec.verdict === 'error' && rec.reason && rec.reason !== 'client_closed') {
      this.errors.inc({ reason: rec.reason });
    }
    const timeoutKind = rec.reason ? TIMEOUT_KIND[rec.reason] : undefined;
    if (timeoutKind) this.timeouts.inc({ kind: timeoutKind });
    if (rec.closeCause === 'idle_timeout') this.timeouts.inc({ kind: 'idle' });
    else if (rec.closeCause === 'lifetime') this.timeouts.inc({ kind: 'lifetime' });
    if (rec.kind === 'tunnel' && rec.status === 200) {
      this.tunnelDuration.observe({ rule }, rec.durationMs / 1000);
    }
    if (rec.bytesUp > 0 || rec.bytesDown > 0) {
      const b = this.closedBytes.get(rule) ?? { up: 0, down: 0 };
      b.up += rec.bytesUp;
      b.down += rec.bytesDown;
      this.closedBytes.set(rule, b);
    }
  }
}

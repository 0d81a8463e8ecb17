import client, { type Registry } from 'prom-client';
import type { AccessRecord, ProxyObserver, RelayEvent, RelayStats } from '../proxy/index.js';
import { ERROR_REASONS, REJECTION_REASONS } from '../errors/catalogue.js';
import { HotHistogram, HotValues, type HistogramSeries, type Series } from './hot.js';

/** Latency buckets (seconds) for connect and DNS: loopback µs up to a slow 10 s connect. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Tunnel lifetimes: sub-second CRL fetches up to agents that hold a tunnel for a day. */
const DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** What metrics read from the proxy at scrape time. */
export interface ProxyState {
  /** Bytes of tunnels still open, so long-lived tunnels show traffic as it flows. */
  forEachOpen(fn: (rule: string, up: number, down: number) => void): void;
  /**
   * The connection limits this process enforces (they change on reload): in cluster mode its share
   * of the gateway-wide limits; `descriptors` is what its file-descriptor budget allows (null: unknown).
   */
  readonly limits: { readonly maxConnections: number; readonly maxConnectionsPerClient: number; readonly descriptors: number | null };
  /** A file-descriptor shortage is being reported (event 112). */
  readonly descriptorsShort: boolean;
  /** The native relay thread's numbers; null (no portcullis_relay_* gauges) where it is not available. */
  relayStats?(): RelayStats | null;
  /** The configured relay (upstream) proxies, host:port, and whether each is up. */
  relayStates?(): Array<{ relay: string; up: boolean }>;
}

/** portcullis_relay_* gauges: one per RelayStats field, read from the addon once per scrape. */
const RELAY_GAUGES: ReadonlyArray<{ name: string; field: Exclude<keyof RelayStats, 'loopIterations'>; help: string }> = [
  { name: 'portcullis_relay_tunnels', field: 'tunnels', help: 'Tunnels the native relay thread carries now.' },
  {
    name: 'portcullis_relay_slots_in_use',
    field: 'slotsInUse',
    help: 'Native relay slots taken: from the hand-over until the proxy has heard the tunnel ended.',
  },
  {
    name: 'portcullis_relay_slot_limit',
    field: 'slotLimit',
    help: 'Most tunnels the native relay takes per process (PORTCULLIS_RELAY_SLOTS, default 65536); summed over workers in cluster mode.',
  },
  {
    name: 'portcullis_relay_pending_bytes',
    field: 'pendingBytes',
    help: 'Bytes the native relay read from one side that the other side has not accepted yet (its socket buffer is full).',
  },
  { name: 'portcullis_relay_blocked_directions', field: 'blockedDirections', help: 'Tunnel directions holding such pending bytes.' },
];

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
interface RuleSeries {
  open: Series;
  duration: HistogramSeries;
  connect: HistogramSeries;
  closedUp: number;
  closedDown: number;
}

/**
 * The data plane's metrics, registered in one registry (the default one in cluster workers, so
 * prom-client's AggregatorRegistry in the primary can sum them across processes). Labels are
 * bounded: rule names come from the config, reasons and verdicts from closed sets. Everything a
 * tunnel touches is a cached series (see hot.ts): no label hashing per tunnel.
 */
export class ProxyMetrics implements ProxyObserver {
  private readonly requests: HotValues;
  private readonly rejections: HotValues;
  private readonly errors: HotValues;
  private readonly limitHits: HotValues;
  private readonly timeouts: HotValues;
  private readonly openTunnels: HotValues;
  private readonly relayed: HotValues;
  private readonly relayFallbacks: HotValues;
  private readonly upstreamProxyFailures: HotValues;
  private readonly upstreamProxyConnections: HotValues;
  private readonly tlsInspections: HotValues;
  private readonly tlsVersions: HotValues;
  private readonly tlsClientCerts: HotValues;
  private readonly tunnelDuration: HotHistogram;
  private readonly connectLatency: HotHistogram;
  private readonly dns: HistogramSeries;
  private readonly rules = new Map<string, RuleSeries>();
  private readonly recentClients = new Map<string, number>();
  private state: ProxyState | null = null;
  private connections = 0;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    // prom-client calls collect() with the metric as `this`: the gateway's own state needs a name.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    new client.Gauge({
      name: 'portcullis_client_connections',
      help: 'Open client connections to the proxy listener (Log Analytics gateway: Active Client Connection).',
      registers,
      collect() {
        this.set(self.connections);
      },
    });
    new client.Gauge({
      name: 'portcullis_connection_limit',
      help: "Connection limits in force, gateway-wide (the sum of every worker's share): limit (total = proxy.limits.maxConnections, or less where the file-descriptor budget allows less; client = maxConnectionsPerClient as enforced; descriptors = connections the descriptor budget (RLIMIT_NOFILE) allows).",
      labelNames: ['limit'],
      registers,
      collect() {
        if (!self.state) return;
        const { limits } = self.state;
        this.set({ limit: 'total' }, limits.maxConnections);
        this.set({ limit: 'client' }, limits.maxConnectionsPerClient);
        if (limits.descriptors !== null) this.set({ limit: 'descriptors' }, limits.descriptors);
      },
    });
    new client.Gauge({
      name: 'portcullis_descriptors_short',
      help: 'Processes short of file descriptors now: connections refused at the descriptor budget or dials that failed with EMFILE in the last interval (event 112).',
      registers,
      collect() {
        this.set(self.state?.descriptorsShort ? 1 : 0);
      },
    });
    this.requests = new HotValues(
      'portcullis_requests_total',
      'Tunnels and forwarded requests by outcome: kind (tunnel|http), verdict (allow|report|deny|error), reason, destination rule.',
      'counter',
      registry,
    );
    this.rejections = new HotValues(
      'portcullis_rejections_total',
      'Requests refused by policy, limits or protocol checks, by reason (Log Analytics gateway: Rejection Count).',
      'counter',
      registry,
    );
    this.errors = new HotValues(
      'portcullis_errors_total',
      'Network errors towards destinations (DNS, connect, upstream), by reason (Log Analytics gateway: Error Count).',
      'counter',
      registry,
    );
    this.limitHits = new HotValues(
      'portcullis_limit_hits_total',
      'Connections refused by a connection limit: limit (total|client|descriptors = the file-descriptor budget, or a dial that got EMFILE).',
      'counter',
      registry,
    );
    this.timeouts = new HotValues(
      'portcullis_timeouts_total',
      'Connections or tunnels closed by a timeout: kind (connect|dns|header|idle|lifetime|upstream_response).',
      'counter',
      registry,
    );
    this.relayed = new HotValues(
      'portcullis_tunnels_relayed_total',
      'Established tunnels by what moved their bytes: relay (native = the relay thread; js = Node streams, the fallback when the addon is not built or relay: js).',
      'counter',
      registry,
    );
    this.relayFallbacks = new HotValues(
      'portcullis_relay_fallbacks_total',
      'Tunnels relayed in JavaScript although the native relay was asked for, by reason (unavailable|buffered|slots_full|no_memory|tls_client: a client on the TLS proxy listener).',
      'counter',
      registry,
    );
    this.tlsInspections = new HotValues(
      'portcullis_tls_inspections_total',
      'Tunnels whose TLS handshake was inspected, by result: passed, not_tls (allowed: the rule does not require TLS), silent (no client bytes in time, or the server spoke first), refused, reported (report mode let a refusal through).',
      'counter',
      registry,
    );
    this.tlsVersions = new HotValues(
      'portcullis_tls_client_versions_total',
      'Inspected ClientHellos by the highest TLS version offered (ssl3|1.0|1.1|1.2|1.3|other).',
      'counter',
      registry,
    );
    this.tlsClientCerts = new HotValues(
      'portcullis_tls_client_certificates_total',
      'Client certificates read from TLS 1.2 handshakes inside tunnels and checked against clients.certificates, by result (allowed|refused).',
      'counter',
      registry,
    );
    // A few atomic loads in the addon per call: cheap enough to read once per gauge and scrape.
    const relayStats = (): RelayStats | null => self.state?.relayStats?.() ?? null;
    for (const g of RELAY_GAUGES) {
      new client.Gauge({
        name: g.name,
        help: g.help,
        registers,
        collect() {
          const stats = relayStats();
          if (stats) this.set(stats[g.field]);
        },
      });
    }
    new client.Counter({
      name: 'portcullis_relay_loop_iterations_total',
      help: 'Wake-ups of the native relay thread (epoll_wait returns): with tunnels idle it stays flat, with traffic it follows the events.',
      registers,
      collect() {
        const stats = relayStats();
        if (!stats) return;
        this.reset();
        this.inc(stats.loopIterations);
      },
    });
    // Relay (upstream) proxies: `proxy` is a configured host:port (bounded by the config), never credentials.
    new client.Gauge({
      name: 'portcullis_upstream_proxy_up',
      help: 'Relay (upstream) proxies: 1 = up, 0 = down (a failure marked it down; skipped for upstreamProxy.backoffMs, then tried again). In cluster mode the lowest over the workers.',
      labelNames: ['proxy'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset();
        for (const r of self.state?.relayStates?.() ?? []) this.set({ proxy: r.relay }, r.up ? 1 : 0);
      },
    });
    this.upstreamProxyFailures = new HotValues(
      'portcullis_upstream_proxy_failures_total',
      'Failures of a relay proxy by reason (connect_refused|connect_timeout|connect_error|auth = 407|status = an answer other than 2xx|bad_response|closed).',
      'counter',
      registry,
    );
    this.upstreamProxyConnections = new HotValues(
      'portcullis_upstream_proxy_connections_total',
      'Tunnels (kind=tunnel) and plain-HTTP requests (kind=http) carried through a relay proxy.',
      'counter',
      registry,
    );
    this.openTunnels = new HotValues('portcullis_open_tunnels', 'Currently open CONNECT tunnels per destination rule.', 'gauge', registry);
    this.tunnelDuration = new HotHistogram(
      'portcullis_tunnel_duration_seconds',
      'Lifetime of established CONNECT tunnels, per destination rule.',
      DURATION_BUCKETS,
      registry,
    );
    this.connectLatency = new HotHistogram(
      'portcullis_upstream_connect_seconds',
      'TCP connect time to the destination, per destination rule.',
      LATENCY_BUCKETS,
      registry,
    );
    this.dns = new HotHistogram(
      'portcullis_dns_seconds',
      'Destination name resolution time (overrides and cache hits included).',
      LATENCY_BUCKETS,
      registry,
    ).series('', () => ({}));
    new client.Counter({
      name: 'portcullis_bytes_total',
      help: 'Payload bytes through tunnels and forwarded requests: direction (up = client to destination, down = destination to client), rule. Includes open tunnels.',
      labelNames: ['direction', 'rule'],
      registers,
      collect() {
        const totals = new Map<string, { up: number; down: number }>();
        for (const [rule, r] of self.rules) {
          if (r.closedUp > 0 || r.closedDown > 0) totals.set(rule, { up: r.closedUp, down: r.closedDown });
        }
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

  private rule(rule: string): RuleSeries {
    let r = this.rules.get(rule);
    if (r === undefined) {
      const labels = (): Record<string, string> => ({ rule });
      r = {
        open: this.openTunnels.series(rule, labels),
        duration: this.tunnelDuration.series(rule, labels),
        connect: this.connectLatency.series(rule, labels),
        closedUp: 0,
        closedDown: 0,
      };
      this.rules.set(rule, r);
    }
    return r;
  }

  clientConnected(ip: string): void {
    this.connections++;
    this.recentClients.set(ip, Date.now());
  }

  clientDisconnected(): void {
    this.connections--;
  }

  tunnelOpened(rule: string): void {
    this.rule(rule).open.value++;
  }

  tunnelClosed(rule: string): void {
    this.rule(rule).open.value--;
  }

  upstreamConnected(rule: string, dnsMs: number, connectMs: number): void {
    this.rule(rule).connect.observe(connectMs / 1000);
    this.dns.observe(dnsMs / 1000);
  }

  relay(e: RelayEvent): void {
    if (e.type === 'failure') this.upstreamProxyFailures.series(`${e.relay}|${e.reason}`, () => ({ proxy: e.relay, reason: e.reason })).value++;
    else if (e.type === 'carried') this.upstreamProxyConnections.series(`${e.relay}|${e.kind}`, () => ({ proxy: e.relay, kind: e.kind })).value++;
  }

  access(rec: AccessRecord): void {
    const rule = rec.rule ?? 'none';
    const reason = rec.reason ?? 'none';
    this.requests.series(`${rec.kind}|${rec.verdict}|${reason}|${rule}`, () => ({ kind: rec.kind, verdict: rec.verdict, reason, rule })).value++;
    if (rec.verdict === 'deny' && rec.reason && REJECTION_REASONS.has(rec.reason)) {
      this.rejections.series(reason, () => ({ reason })).value++;
      if (rec.reason === 'limit_total') this.limitHits.series('total', () => ({ limit: 'total' })).value++;
      else if (rec.reason === 'limit_client') this.limitHits.series('client', () => ({ limit: 'client' })).value++;
      else if (rec.reason === 'fd_exhausted') this.limitHits.series('descriptors', () => ({ limit: 'descriptors' })).value++;
    } else if (rec.verdict === 'error' && rec.reason && ERROR_REASONS.has(rec.reason)) {
      this.errors.series(reason, () => ({ reason })).value++;
    }
    const timeoutKind = TIMEOUT_KIND[reason] ?? (rec.closeCause === 'idle_timeout' ? 'idle' : rec.closeCause === 'lifetime' ? 'lifetime' : undefined);
    if (timeoutKind) this.timeouts.series(timeoutKind, () => ({ kind: timeoutKind })).value++;
    if (rec.kind === 'tunnel' && rec.status === 200) {
      this.rule(rule).duration.observe(rec.durationMs / 1000);
      const relay = rec.relay;
      if (relay) this.relayed.series(relay, () => ({ relay })).value++;
      const why = rec.relayFallback;
      if (why) this.relayFallbacks.series(why, () => ({ reason: why })).value++;
    }
    const tls = rec.tls;
    if (tls) {
      const result = tls.result;
      this.tlsInspections.series(result, () => ({ result })).value++;
      const offered = tls.offered;
      if (offered) this.tlsVersions.series(offered, () => ({ version: offered })).value++;
      if (tls.clientCert) {
        const certResult = rec.reason === 'tls_client_cert' ? 'refused' : 'allowed';
        this.tlsClientCerts.series(certResult, () => ({ result: certResult })).value++;
      }
    }
    if (rec.bytesUp > 0 || rec.bytesDown > 0) {
      const r = this.rule(rule);
      r.closedUp += rec.bytesUp;
      r.closedDown += rec.bytesDown;
    }
  }
}

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import tls, { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import type { ProxyConfig, UpstreamProxyConfig } from '../config/types.js';
import { parseListenAddress } from '../config/index.js';
import type { Policy } from '../policy/index.js';
import { DirectDialer, RelayHealth, type Dialer, type Resolver } from '../dial/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { Errors, withDetail } from '../errors/catalogue.js';
import { noopObserver, type AccessRecord, type ProxyObserver } from './access.js';
import { CONN_STATE, connState, normaliseClientIp, newAccessRecord, recordRefusal, type ConnState, type ProxyContext, type TrackedSocket } from './context.js';
import { writeRefusal, type Refusal } from './refusal.js';
import { handleConnect } from './tunnel.js';
import { nativeRelayStats, type RelayStats } from '../relay/index.js';
import { HttpForwarder } from './forward.js';
import { currentDescriptorBudget, ShortageLog, type DescriptorBudget } from './descriptors.js';
import { readFirstHead, type FrontDoorSink } from './front-door.js';
import { buildRelays, logRelayEvent, type RelaySetup } from './relays.js';
import { Authenticator } from '../auth/index.js';
import { displaySubject, identityLabel, normaliseThumbprint } from '../policy/index.js';
import { headField } from './identify.js';
import { loadTlsOptions, type TlsListenerOptions } from './tls-listener.js';

export interface ProxyServerOptions {
  config: ProxyConfig;
  policy: Policy;
  resolver: Resolver;
  logger: Logger;
  accessLog: boolean;
  observer?: ProxyObserver;
  /** How admitted destinations are reached; built again on reload. Default: direct. */
  createDialer?: (config: ProxyConfig) => Dialer;
  /** Relay (upstream) proxies: destinations not on its bypass list go through them. */
  upstreamProxy?: UpstreamProxyConfig;
}

/** Straight to the vetted addresses, with the configured timeouts. */
export function directDialer(config: ProxyConfig): Dialer {
  const { timeouts } = config;
  return new DirectDialer({ connectMs: timeouts.connectMs, headersMs: timeouts.upstreamResponseMs, bodyMs: timeouts.idleMs });
}

export interface BoundAddress {
  host: string;
  port: number;
  /** The TLS proxy listener (proxy.tls.listen). */
  tls?: true;
}

/** This process's part of the gateway-wide connection limits (cluster workers each enforce a share). */
export interface LimitShare {
  maxConnections: number;
  maxConnectionsPerClient: number;
}

/** The connection limits this process enforces, and what bounds the total. */
export interface EffectiveLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** Connections the descriptor budget allows (null: the limit is unknown here). */
  descriptors: number | null;
  /** The descriptor budget, not the configured limit, is what bounds maxConnections. */
  boundByDescriptors: boolean;
  /** Node's own cap past which connections are closed at accept, unanswered. */
  hardCap: number;
}

/** On drain, how long a connection accepted just before it has to send its first byte. */
const DRAIN_FIRST_REQUEST_GRACE_MS = 1_000;

/** How long a refused connection may take to send the request it is answered on. */
const REFUSED_LEASH_MS = 5_000;

/** How long a connection stays half-closed once its response is written, reading and dropping what the client still sends. */
const LINGER_MS = 2_000;

/**
 * End the connection after its response: a FIN once everything is written, then read and drop
 * until the client closes its side (the socket then ends itself) or LINGER_MS pass, however much
 * the client keeps sending. Closing a socket with bytes not yet read (a refused request's body, a
 * request pipelined behind it) makes the kernel answer with a reset, which can discard the
 * response's unsent tail.
 */
function lingeringEnd(socket: Socket): void {
  socket.resume();
  socket.end(() => {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
}

/** Node ends a `Connection: close` exchange with `destroySoon()`, a close as soon as the response is written: linger instead. */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = () => lingeringEnd(socket);
}

type ConnectionListener = (this: http.Server, socket: Socket) => void;

/** Node's own 'connection' listener of an http.Server (the one that attaches its parser). */
function takeHttpConnectionListener(server: http.Server): ConnectionListener {
  const listeners = server.listeners('connection');
  const own = listeners[0];
  if (listeners.length !== 1 || typeof own !== 'function') throw new Error('http.Server has no single connection listener to take over');
  server.removeListener('connection', own as ConnectionListener);
  return own as ConnectionListener;
}

/** Connections beyond maxConnections that still get a polite 503 before the kernel-level cap drops them. */
const REFUSAL_HEADROOM = 256;

/** Settles when `p` does or after `ms`, whichever is first. */
async function withDeadline(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([p, deadline]);
  clearTimeout(timer);
}

/** Map a parser error to the status the client should see. */
function parserRefusal(err: NodeJS.ErrnoException): Refusal {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return Errors.HEADER_TOO_LARGE;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return Errors.HEADER_TIMEOUT;
    default:
      return withDetail(Errors.PARSE, err.code ?? 'UNKNOWN');
  }
}

/**
 * The proxy listener(s): CONNECT tunnels and plain-HTTP forwarding. Limits and the client ACL are
 * checked once per connection at accept time; the refusal is answered on the first request so the
 * client gets a real status (and Retry-After) instead of a reset.
 */
export class ProxyServer {
  readonly ctx: ProxyContext;
  /** The HTTP layer of every listener (connection tracking, timeouts); on the TLS listeners it is fed decrypted sockets. */
  private readonly servers: http.Server[] = [];
  /** What is bound: the plain HTTP servers themselves, and the TLS servers in front of theirs. */
  private readonly bound: NetServer[] = [];
  private readonly tlsServers: tls.Server[] = [];
  private tlsOptions: TlsListenerOptions | null = null;
  private readonly forwarder: HttpForwarder;
  private readonly createDialer: (config: ProxyConfig) => Dialer;
  private readonly perClient = new Map<string, number>();
  /** What we know of each relay proxy, kept across reloads. */
  private readonly relayHealth = new RelayHealth();
  /** The relay proxies in force (also ctx.relay), or null. */
  private relays: RelaySetup | null;
  private active = 0;
  /** Open connections that were not refused at accept: what the total limit counts (refusals are on their way out). */
  private admitted = 0;
  private draining = false;
  /** Open client connections: drain waits for their 'close'. */
  private readonly sockets = new Set<Socket>();
  private readonly quietWaiters: Array<() => void> = [];
  /** Measured once the listeners are bound (the baseline of descriptors the process already holds). */
  private budget: DescriptorBudget | null = null;
  private share: LimitShare | null = null;
  private effective: EffectiveLimits;

  constructor(opts: ProxyServerOptions) {
    this.createDialer = opts.createDialer ?? directDialer;
    const observer = opts.observer ?? noopObserver;
    this.relayHealth.listener = (e) => {
      observer.relay(e);
      logRelayEvent(this.ctx.logger, e);
    };
    this.relays = buildRelays(opts.upstreamProxy, opts.config, this.relayHealth);
    this.ctx = {
      policy: opts.policy,
      resolver: opts.resolver,
      dialer: this.createDialer(opts.config),
      relay: this.relays,
      config: opts.config,
      logger: opts.logger,
      observer,
      accessLog: opts.accessLog,
      tunnels: new Set(),
      auth: null,
      shortage: new ShortageLog(
        () => this.ctx.logger,
        () => ({ nofile: this.budget?.nofile, connections: this.active, limit: this.effective.maxConnections }),
      ),
    };
    this.effective = this.computeLimits();
    this.forwarder = new HttpForwarder(this.ctx);
  }

  get activeConnections(): number {
    return this.active;
  }

  /** Open connections admitted (not refused at accept): this process's load, for the supervisor's rebalancing. */
  get admittedConnections(): number {
    return this.admitted;
  }

  /** The share of the gateway-wide limits this process enforces (null: the configured limits). */
  get limitShare(): LimitShare | null {
    return this.share;
  }

  get openTunnels(): number {
    return this.ctx.tunnels.size;
  }

  /** The limits in force here: the configured (or this worker's share of the) limits, within the descriptor budget. */
  get limits(): EffectiveLimits {
    return this.effective;
  }

  /** Whether a descriptor shortage is being reported (see ShortageLog). */
  get descriptorsShort(): boolean {
    return this.ctx.shortage.active;
  }

  /** Cluster workers: enforce this share of the gateway-wide limits (null: the configured limits as they are). */
  setLimitShare(share: LimitShare | null): void {
    this.share = share;
    this.applyLimits();
  }

  /** For metrics: bytes of every open tunnel, read at scrape time (no per-chunk accounting). */
  forEachOpen(fn: (rule: string, up: number, down: number) => void): void {
    for (const t of this.ctx.tunnels) fn(t.ruleLabel, t.bytesUp, t.bytesDown);
  }

  /** For metrics: the configured relay proxies (host:port) and whether each is up; empty without upstreamProxy. */
  relayStates(): Array<{ relay: string; up: boolean }> {
    return this.relays?.dialer.states() ?? [];
  }

  /** For metrics: the native relay thread's numbers (per process), or null where it is not available. */
  relayStats(): RelayStats | null {
    return nativeRelayStats();
  }

  /**
   * Read what identifies clients (the htpasswd file, the TLS listener's certificate, key and CA)
   * for this config, before anything else changes: throws PCL_ERR_PROXY_AUTH_FILE or
   * PCL_ERR_PROXY_TLS_FILE when a file cannot be read or parsed. Called at start and on reload.
   */
  loadIdentity(config: ProxyConfig): void {
    const tlsOptions = config.tls ? loadTlsOptions(config.tls) : null;
    let auth: Authenticator | null = null;
    if (config.auth) {
      const onLoaded = (info: { file: string; users: number; skipped: ReadonlyArray<{ line: number; why: string }> }): void => {
        this.ctx.logger.info({ event: Events.PROXY_AUTH_FILE, file: info.file, users: info.users }, 'proxy users loaded');
        for (const s of info.skipped) this.ctx.logger.warn({ event: Events.PROXY_AUTH_FILE, file: info.file, line: s.line }, `htpasswd line skipped: ${s.why}`);
      };
      if (this.ctx.auth) {
        this.ctx.auth.reconfigure(config.auth);
        auth = this.ctx.auth;
      } else auth = new Authenticator(config.auth, onLoaded);
    }
    this.ctx.auth = auth;
    this.tlsOptions = tlsOptions;
    if (tlsOptions) for (const s of this.tlsServers) s.setSecureContext(tlsOptions.contextOptions);
  }

  /** Bind every configured listen address; rejects (and closes what was bound) if any fails. */
  async listen(): Promise<BoundAddress[]> {
    const bound: BoundAddress[] = [];
    try {
      for (const spec of this.ctx.config.listen) {
        const { host, port } = parseListenAddress(spec);
        const server = this.createServer();
        this.servers.push(server);
        this.bound.push(server);
        server.listen({ host, port, backlog: 4096 });
        await once(server, 'listening');
        const addr = server.address();
        if (addr && typeof addr === 'object') bound.push({ host: addr.address, port: addr.port });
      }
      const tlsOptions = this.tlsOptions;
      for (const spec of this.ctx.config.tls?.listen ?? []) {
        if (tlsOptions === null) throw new Error('proxy.tls is configured but loadIdentity() was not called');
        const { host, port } = parseListenAddress(spec);
        const server = this.createTlsServer(tlsOptions);
        server.listen({ host, port, backlog: 4096 });
        await once(server, 'listening');
        const addr = server.address();
        if (addr && typeof addr === 'object') bound.push({ host: addr.address, port: addr.port, tls: true });
      }
      // What the process holds once bound is the baseline the budget leaves alone.
      this.budget = currentDescriptorBudget();
      this.applyLimits();
    } catch (err) {
      for (const s of this.bound) s.close();
      this.servers.length = 0;
      this.bound.length = 0;
      this.tlsServers.length = 0;
      throw err;
    }
    return bound;
  }

  /** Hot reload: new policy/resolver/limits apply to new requests; live tunnels are untouched. */
  reload(update: { policy: Policy; resolver: Resolver; config: ProxyConfig; accessLog: boolean; upstreamProxy?: UpstreamProxyConfig | undefined }): void {
    // First: a file that cannot be read refuses the reload before anything has changed.
    this.loadIdentity(update.config);
    this.ctx.policy = update.policy;
    this.ctx.resolver = update.resolver;
    this.ctx.config = update.config;
    this.ctx.accessLog = update.accessLog;
    this.applyLimits();
    // New timeouts apply to new connections; pooled ones close once idle.
    const old = this.ctx.dialer;
    this.ctx.dialer = this.createDialer(update.config);
    void old.close().catch(() => undefined);
    // New relays, credentials and bypass list apply to new connections at once; established tunnels keep their sockets.
    const oldRelay = this.relays;
    this.relays = buildRelays(update.upstreamProxy, update.config, this.relayHealth);
    this.ctx.relay = this.relays;
    if (oldRelay) void oldRelay.dialer.close().catch(() => undefined);
  }

  /**
   * Stop accepting, close idle keep-alive connections, let live tunnels and requests finish for up
   * to `deadlineMs`, then close whatever is left. Waits on the sockets' own 'close' events.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    this.ctx.shortage.stop();
    const closed = this.bound.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.servers) {
      // A keep-alive connection whose request is still in flight goes idle when its response
      // ends: the server then gives it this (plus Node's own margin) before closing it.
      s.keepAliveTimeout = 1;
      s.closeIdleConnections();
    }
    // Connections still in the front door that have not sent a byte: a load balancer may have
    // handed one over just before the drain with its request on the way. Accepted before the
    // drain, it is served if its request comes within the grace; silent ones are closed then.
    // (One with part of a head may still finish its request.)
    const silent = [...this.sockets].filter((socket) => socket.bytesRead === 0);
    if (silent.length > 0) {
      setTimeout(
        () => {
          for (const socket of silent) if (socket.bytesRead === 0) socket.destroy();
        },
        Math.min(DRAIN_FIRST_REQUEST_GRACE_MS, deadlineMs),
      ).unref();
    }
    await withDeadline(this.quiet(), deadlineMs);
    for (const t of [...this.ctx.tunnels]) t.close('drain');
    for (const s of this.servers) s.closeAllConnections();
    // Connections the HTTP server no longer tracks (CONNECTs being refused or dialled).
    for (const socket of this.sockets) socket.destroy();
    // Sockets emit 'close' (and tunnels write their access records) on a later tick.
    await withDeadline(this.quiet(), 1_000);
    await this.ctx.dialer.destroy().catch(() => undefined);
    await this.ctx.relay?.dialer.destroy().catch(() => undefined);
    await Promise.all(closed);
  }

  /** Resolves once no client connection is open and every tunnel has written its record. */
  private async quiet(): Promise<void> {
    if (this.sockets.size > 0) await new Promise<void>((resolve) => this.quietWaiters.push(resolve));
    await Promise.all([...this.ctx.tunnels].map((t) => t.closed()));
  }

  private computeLimits(): EffectiveLimits {
    const configured = this.share ?? this.ctx.config.limits;
    const descriptors = this.budget?.connections ?? null;
    const boundByDescriptors = descriptors !== null && descriptors < configured.maxConnections;
    const maxConnections = descriptors !== null ? Math.min(configured.maxConnections, descriptors) : configured.maxConnections;
    // Past the budget, refusals use one descriptor each, and only as many as the budget kept for them.
    const hardCap = Math.min(maxConnections + REFUSAL_HEADROOM, this.budget ? this.budget.connections + this.budget.refusalReserve : Infinity);
    return {
      maxConnections,
      maxConnectionsPerClient: Math.min(configured.maxConnectionsPerClient, maxConnections),
      descriptors,
      boundByDescriptors,
      hardCap,
    };
  }

  private applyLimits(): void {
    this.effective = this.computeLimits();
    for (const s of this.servers) this.applyServerLimits(s);
    for (const s of this.tlsServers) s.maxConnections = this.effective.hardCap;
  }

  private applyServerLimits(server: http.Server): void {
    const { timeouts } = this.ctx.config;
    server.maxConnections = this.effective.hardCap;
    server.headersTimeout = timeouts.headersMs;
    server.keepAliveTimeout = Math.min(timeouts.idleMs || 30_000, 30_000);
    server.setTimeout(timeouts.idleMs);
  }

  private createServer(): http.Server {
    const { limits, timeouts } = this.ctx.config;
    const server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: timeouts.headersMs,
      // Whole-request deadlines would cut long uploads; the idle timeout bounds a stalled body.
      requestTimeout: 0,
      // Checked this often; a slow-header client is cut at most this long after headersMs.
      connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(timeouts.headersMs / 4))),
      noDelay: true,
      // CONNECT from some agents carries no Host header; absolute-form requests name the host anyway.
      requireHostHeader: false,
    });
    this.applyServerLimits(server);
    // The first request of every connection is read by the front door (strict request line; a
    // CONNECT never reaches the HTTP parser); plain HTTP then goes on to Node's parser.
    const httpConnection = takeHttpConnectionListener(server);
    const sink: FrontDoorSink = {
      head: (socket, method, target, rest, head) => {
        const { refusal } = connState(socket);
        if (refusal) return this.refuseRaw(socket, method, target, refusal);
        const authorization = this.ctx.auth !== null ? headField(head, 'proxy-authorization') : undefined;
        handleConnect(this.ctx, target, socket, rest, authorization).catch((err: unknown) => this.internalError(err, socket));
      },
      http: (socket) => {
        httpConnection.call(server, socket);
        socket.resume();
      },
      refuse: (socket, method, target, r) => this.refuseRaw(socket, method, target, r),
    };
    server.on('connection', (socket: Socket) => {
      const state = this.onConnection(socket);
      const { headersMs } = this.ctx.config.timeouts;
      readFirstHead(
        socket,
        {
          maxHeaderBytes: this.ctx.config.limits.maxHeaderBytes,
          timeoutMs: state.refusal ? Math.min(REFUSED_LEASH_MS, headersMs) : headersMs,
          wholeHead: state.refusal !== null,
        },
        sink,
      );
    });
    // One request per plain-HTTP connection: the front door checked this request's line; a later
    // one would be read by llhttp alone, which accepts lines the front door refuses. So every
    // plain-HTTP response says `Connection: close` and ends the connection, and a request the
    // client pipelined behind it is not processed (RFC 9112 §9.6); it may retry on a new
    // connection, where the front door reads it. See docs/design-notes.md.
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
      const state = connState(req.socket);
      if (state.exchange !== null) {
        // Not processed; its body is read and dropped, so the socket keeps reading until it closes.
        req.resume();
        return;
      }
      state.exchange = { req, res };
      lingerOnClose(req.socket);
      this.forwarder.handle(req, res).catch((err: unknown) => this.internalError(err, req.socket));
    });
    // The front door answers a connection's first CONNECT: one that reaches Node's parser came
    // after a plain-HTTP request on the same connection, and is not processed either.
    server.on('connect', (_req: IncomingMessage, socket: Socket) => this.afterTheRequest(socket));
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      if (connState(socket).exchange !== null) return this.afterTheRequest(socket);
      socket.on('error', () => socket.destroy());
      this.refuseRaw(socket, req.method ?? '', req.url ?? '', Errors.UPGRADE);
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const exchange = connState(socket).exchange;
      // Bytes after the connection's one request: never processed; its response closes the connection.
      if (exchange?.req.complete === true) return;
      // The request's own body was malformed: answer if nothing was sent yet, else cut.
      if (exchange?.res.headersSent === true || !socket.writable) {
        socket.destroy();
        return;
      }
      this.refuseRaw(socket, exchange?.req.method ?? '', exchange?.req.url ?? '', parserRefusal(err));
    });
    server.on('drop', () => {
      // Past maxConnections + headroom the kernel-level cap closes connections without a word.
      this.ctx.observer.access(this.dropRecord());
      if (this.effective.boundByDescriptors) this.ctx.shortage.note('admit');
    });
    server.on('error', (err) => {
      // A failed listen() is the start's to report (ServiceStartError), in one line.
      if (server.listening) this.ctx.logger.error({ event: Events.NETWORK_ERROR, err }, 'proxy listener error');
    });
    return server;
  }

  /**
   * A TLS proxy listener: TLS is terminated here and each decrypted socket goes into an HTTP
   * server of its own (never bound) through the same front door, limits, ACL and handlers as the
   * plain listeners. Client certificates are asked for but not enforced by the handshake, so a
   * missing, untrusted or unlisted one is answered with a 403 and a code, not a bare TLS alert.
   */
  private createTlsServer(options: TlsListenerOptions): tls.Server {
    const inner = this.createServer();
    this.servers.push(inner);
    const server = tls.createServer({
      ...options.contextOptions,
      requestCert: options.requestCert,
      rejectUnauthorized: false,
      // Tunnels pass half-closes on, as on the plain listeners (Node's HTTP server sets this for its own).
      allowHalfOpen: true,
      handshakeTimeout: this.ctx.config.timeouts.headersMs,
    });
    this.tlsServers.push(server);
    this.bound.push(server);
    server.maxConnections = this.effective.hardCap;
    server.on('secureConnection', (socket: TLSSocket) => inner.emit('connection', socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      this.ctx.logger.info(
        { event: Events.CLIENT_TLS_FAILED, client: normaliseClientIp(socket.remoteAddress ?? ''), code: err.code, err: err.message },
        'TLS handshake with a proxy client failed',
      );
      socket.destroy();
    });
    server.on('drop', () => this.ctx.observer.access(this.dropRecord()));
    server.on('error', (err) => {
      if (server.listening) this.ctx.logger.error({ event: Events.NETWORK_ERROR, err }, 'TLS proxy listener error');
    });
    return server;
  }

  /** A TLS client's certificate: the refusal when it is missing (and required), untrusted or unlisted; else its identity. */
  private certificateCheck(socket: TLSSocket): { refusal: Refusal | null; identity: ConnState['identity'] } {
    const options = this.tlsOptions;
    if (options === null || !options.requestCert) return { refusal: null, identity: null };
    const cert = socket.getPeerX509Certificate();
    if (cert === undefined) return { refusal: options.requireClientCert ? Errors.CLIENT_CERT_REQUIRED : null, identity: null };
    if (!socket.authorized) {
      const why = socket.authorizationError;
      return { refusal: withDetail(Errors.CLIENT_CERT_UNTRUSTED, why instanceof Error ? why.message : String(why)), identity: null };
    }
    const subject = displaySubject(cert.subject);
    const thumbprintSha256 = normaliseThumbprint(cert.fingerprint256) ?? '';
    const identity = { kind: 'certificate', subject, thumbprintSha256 } as const;
    if (!this.ctx.policy.certificates.allows(subject, thumbprintSha256)) {
      // The identity stays on the connection so the refusal's record names the certificate to add.
      return { refusal: withDetail(Errors.CLIENT_CERT_NOT_ALLOWED, `${subject} (SHA-256 ${thumbprintSha256})`), identity };
    }
    return { refusal: null, identity };
  }

  private onConnection(socket: Socket): ConnState {
    const ip = normaliseClientIp(socket.remoteAddress ?? '');
    const n = (this.perClient.get(ip) ?? 0) + 1;
    this.perClient.set(ip, n);
    this.active++;
    this.sockets.add(socket);
    this.ctx.observer.clientConnected(ip);
    let refused: Refusal | null = null;
    let aclReport = false;
    if (this.draining) refused = Errors.DRAINING;
    else if (this.admitted >= this.effective.maxConnections) refused = this.effective.boundByDescriptors ? Errors.FD_LIMIT : Errors.LIMIT_TOTAL;
    else if (n > this.effective.maxConnectionsPerClient) refused = Errors.LIMIT_CLIENT;
    else {
      const acl = this.ctx.policy.checkClient(ip);
      if (acl.verdict === 'deny') refused = Errors.CLIENT_FORBIDDEN;
      else if (acl.verdict === 'report') aclReport = true;
    }
    let identity: ConnState['identity'] = null;
    if (!refused && socket instanceof TLSSocket) {
      const c = this.certificateCheck(socket);
      refused = c.refusal;
      identity = c.identity;
    }
    if (!refused) this.admitted++;
    const state: ConnState = { ip, refusal: refused, aclReport, exchange: null, identity };
    const tracked: TrackedSocket = socket;
    tracked[CONN_STATE] = state;
    socket.once('close', () => {
      this.active--;
      if (!refused) this.admitted--;
      this.sockets.delete(socket);
      if (this.sockets.size === 0) for (const done of this.quietWaiters.splice(0)) done();
      const left = (this.perClient.get(ip) ?? 1) - 1;
      if (left <= 0) this.perClient.delete(ip);
      else this.perClient.set(ip, left);
      this.ctx.observer.clientDisconnected();
    });
    return state;
  }

  /**
   * A CONNECT or Upgrade request Node's parser read behind the connection's plain-HTTP request:
   * not processed. Node has let go of the socket (and of its timeouts); the response in flight
   * still closes it when it ends (lingerOnClose), or already did. Whatever the client sends
   * meanwhile is read and dropped, so that close is a FIN after the response, not a reset.
   */
  private afterTheRequest(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    socket.on('data', () => undefined);
    const exchange = connState(socket).exchange;
    if (exchange === null || exchange.res.writableFinished) {
      lingeringEnd(socket);
      return;
    }
    const { idleMs } = this.ctx.config.timeouts;
    if (idleMs > 0) socket.setTimeout(idleMs, () => socket.destroy());
  }

  private refuseRaw(socket: Socket, method: string, target: string, r: Refusal): void {
    const rec = refusalRecord(method === 'CONNECT' ? 'tunnel' : 'http', normaliseClientIp(socket.remoteAddress ?? ''), method, target, r);
    const tracked: TrackedSocket = socket;
    const who = identityLabel(tracked[CONN_STATE]?.identity);
    if (who !== undefined) rec.identity = who;
    // The front door let go of the socket (its listeners too): a client that resets while the
    // answer is written ends only this connection, and what it still sends is read and dropped so
    // the close is not turned into a reset on our side.
    if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
    socket.resume();
    writeRefusal(socket, r, this.ctx.auth?.realm);
    // Through recordRefusal: a descriptor shortage is counted, and logged once per interval, not per connection.
    recordRefusal(this.ctx, rec, r, performance.now());
  }

  private dropRecord(): AccessRecord {
    return refusalRecord('tunnel', '', '', '', this.effective.boundByDescriptors ? Errors.FD_DROPPED : Errors.LIMIT_DROPPED);
  }

  private internalError(err: unknown, socket: Socket): void {
    // A bug must cost one connection, never the process.
    this.ctx.logger.error({ event: Errors.INTERNAL.event, code: Errors.INTERNAL.code, err }, 'internal error handling a request');
    socket.destroy();
  }
}

/** The access record of a refusal answered before any routing (or of a connection dropped unanswered). */
function refusalRecord(kind: AccessRecord['kind'], client: string, method: string, target: string, r: Refusal): AccessRecord {
  const rec = newAccessRecord(kind, r.event, client, method, target);
  rec.reason = r.reason;
  rec.status = r.status;
  rec.code = r.code;
  return rec;
}

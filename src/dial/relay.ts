/**
 * The relay (upstream, corporate) proxy Dialer: tunnels are CONNECT-over-CONNECT through the first
 * healthy relay, plain HTTP goes to it as absolute-form requests. A relay that fails (connect
 * refused or timed out, a head we cannot read, a hang-up) is marked down and skipped for backoffMs
 * while the next one is tried; after the back-off it is tried again, and marked up once it carries
 * a connection. A relay that answers CONNECT with an error status or not in time is alive: the next
 * relay gets a try for this tunnel, but it is not marked down (relayStaysUp). A 407 is a
 * configuration problem, not an outage: PCL_ERR_RELAY_AUTH at once, the relay stays up. No relay
 * opened the tunnel: PCL_ERR_RELAY_REFUSED when one answered, else PCL_ERR_RELAY_UNAVAILABLE.
 *
 * The destination's name goes to the relay as the client gave it: DNS of the destination is the
 * relay's (what local resolution the policy still needs is src/proxy/route.ts's business).
 */
import type { Socket } from 'node:net';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCode, PortcullisError } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';
import type { Dialer, DialTarget } from './dialer.js';
import { connectThroughRelay, RelayFailure, relayStaysUp, type RelayEndpoint, type RelayFailureReason } from './relay-connect.js';

/** What the relays did, for logs and metrics (the dialer imports neither). */
export type RelayEvent =
  /** Marked down: skipped for backoffMs. */
  | { type: 'down'; relay: string; reason: RelayFailureReason; message: string; backoffMs: number }
  /** Was down, carried a connection again. */
  | { type: 'up'; relay: string }
  /** Any failure, including those of a relay already down and 407s (portcullis_upstream_proxy_failures_total). */
  | { type: 'failure'; relay: string; reason: RelayFailureReason }
  /** A tunnel or a plain-HTTP request went through this relay. */
  | { type: 'carried'; relay: string; kind: 'tunnel' | 'http' };

/**
 * Up/down state per relay (by host:port), kept across reloads: a reload that keeps a relay keeps
 * what we know about it. Every relay starts up.
 */
export class RelayHealth {
  readonly #downUntil = new Map<string, number>();
  listener: (e: RelayEvent) => void = () => {};

  /** Up, or down with its back-off over (worth another try). */
  eligible(relay: string, now = Date.now()): boolean {
    const until = this.#downUntil.get(relay);
    return until === undefined || until <= now;
  }

  isUp(relay: string): boolean {
    return !this.#downUntil.has(relay);
  }

  succeeded(relay: string, kind: 'tunnel' | 'http'): void {
    if (this.#downUntil.delete(relay)) this.listener({ type: 'up', relay });
    this.listener({ type: 'carried', relay, kind });
  }

  failed(f: RelayFailure, backoffMs: number): void {
    this.listener({ type: 'failure', relay: f.relay, reason: f.reason });
    if (relayStaysUp(f.reason)) return;
    const now = Date.now();
    const until = this.#downUntil.get(f.relay);
    // Concurrent attempts failing together report the outage once.
    if (until !== undefined && until > now) return;
    this.#downUntil.set(f.relay, now + backoffMs);
    this.listener({ type: 'down', relay: f.relay, reason: f.reason, message: f.message, backoffMs });
  }

  /** Forget relays no longer configured. */
  retain(relays: readonly string[]): void {
    for (const r of [...this.#downUntil.keys()]) if (!relays.includes(r)) this.#downUntil.delete(r);
  }
}

export interface RelayDialerOptions {
  relays: readonly RelayEndpoint[];
  /** TCP connect to the relay plus its answer to CONNECT. */
  connectMs: number;
  backoffMs: number;
  /** Plain HTTP: wait this long for the response head. */
  headersMs: number;
  /** Plain HTTP: the longest gap between body chunks. */
  bodyMs: number;
  health: RelayHealth;
}

/**
 * The client-visible error when no relay opened the tunnel: a relay that answered (an error status,
 * or nothing in time) makes it PCL_ERR_RELAY_REFUSED (the destination, as seen from the relay);
 * otherwise none could be reached: PCL_ERR_RELAY_UNAVAILABLE.
 */
function unavailable(tried: readonly RelayFailure[]): PortcullisError {
  const why = tried.length === 0 ? 'every relay proxy is down (backing off)' : tried.map((f) => f.message).join('; ');
  const answered = tried.some((f) => f.reason === 'status' || f.reason === 'answer_timeout');
  return new PortcullisError(answered ? 'PCL_ERR_RELAY_REFUSED' : 'PCL_ERR_RELAY_UNAVAILABLE', why);
}

function authError(f: RelayFailure): PortcullisError {
  return new PortcullisError('PCL_ERR_RELAY_AUTH', f.message);
}

/** undici's errors for a connection to the relay that never got a request through. */
function httpConnectFailure(relay: string, err: Error): RelayFailure | null {
  const code = errorCode(err);
  if (code === 'ECONNREFUSED') return new RelayFailure(relay, 'connect_refused', `relay proxy ${relay} refused the connection`);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT')
    return new RelayFailure(relay, 'connect_timeout', `relay proxy ${relay}: connect timed out (${code})`);
  // Not ECONNRESET / UND_ERR_SOCKET: a pooled keep-alive connection the relay closed says nothing against the relay.
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new RelayFailure(relay, 'connect_error', `relay proxy ${relay}: connect failed (${code})`);
  return null;
}

export class RelayDialer implements Dialer {
  readonly kind = 'relay';
  readonly dispatcher: Dispatcher;
  readonly #opts: RelayDialerOptions;
  readonly #agent: Agent;
  readonly #via = new WeakMap<Socket, string>();

  constructor(opts: RelayDialerOptions) {
    this.#opts = opts;
    opts.health.retain(opts.relays.map((r) => r.label));
    const { connectMs, headersMs, bodyMs } = opts;
    // One keep-alive pool per relay; requests reach it in absolute form (RFC 9112 §3.2.2).
    this.#agent = new Agent({
      factory: (origin) =>
        new Pool(origin, {
          connections: 256,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          headersTimeout: headersMs,
          bodyTimeout: bodyMs,
          connect: { timeout: connectMs },
        }),
    });
    this.dispatcher = this.#agent.compose(() => (dispatchOpts, handler) => {
      this.#dispatchHttp(dispatchOpts, handler, 0, []);
      return true;
    });
  }

  /** The configured relays (host:port) and whether each is up, for metrics. */
  states(): Array<{ relay: string; up: boolean }> {
    return this.#opts.relays.map((r) => ({ relay: r.label, up: this.#opts.health.isUp(r.label) }));
  }

  via(socket: Socket): string | null {
    return this.#via.get(socket) ?? null;
  }

  async connect(target: DialTarget): Promise<Socket> {
    const { relays, connectMs, backoffMs, health } = this.#opts;
    const tried: RelayFailure[] = [];
    const now = Date.now();
    for (const relay of relays) {
      if (!health.eligible(relay.label, now)) continue;
      try {
        const socket = await connectThroughRelay(relay, target.host, target.port, connectMs);
        health.succeeded(relay.label, 'tunnel');
        this.#via.set(socket, relay.label);
        return socket;
      } catch (err) {
        if (!(err instanceof RelayFailure)) throw err;
        health.failed(err, backoffMs);
        if (err.reason === 'auth') throw authError(err);
        tried.push(err);
      }
    }
    throw unavailable(tried);
  }

  /** The destination as an origin (`http://name:port`): the request goes to the relay in absolute form. */
  origin(target: DialTarget): string {
    return `http://${hostPort(target.host, target.port)}`;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  async destroy(): Promise<void> {
    await this.#agent.destroy();
  }

  /** Send the request to the first eligible relay from `from` on; a relay that cannot be reached hands it to the next. */
  #dispatchHttp(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, from: number, tried: RelayFailure[]): void {
    const { relays, health } = this.#opts;
    const now = Date.now();
    let i = from;
    while (i < relays.length && !health.eligible(relays[i]?.label ?? '', now)) i++;
    const relay = relays[i];
    if (relay === undefined) {
      handler.onResponseError?.(settledController(), unavailable(tried));
      return;
    }
    const path = `${String(opts.origin ?? '')}${opts.path}`;
    const headers = headerRecord(opts.headers);
    if (relay.auth !== null) headers['proxy-authorization'] = relay.auth;
    const attempt = new RelayHttpAttempt(handler, relay.label, this.#opts, (f) => {
      tried.push(f);
      this.#dispatchHttp(opts, handler, i + 1, tried);
    });
    this.#agent.dispatch({ ...opts, origin: `http://${relay.label}`, path, headers }, attempt);
  }
}

/** The request's headers as a record (forward.ts gives one; the other shapes undici takes are copied over). */
function headerRecord(h: Dispatcher.DispatchOptions['headers']): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  if (h === null || h === undefined) return out;
  if (Array.isArray(h)) {
    for (let i = 0; i + 1 < h.length; i += 2) out[String(h[i]).toLowerCase()] = String(h[i + 1]);
    return out;
  }
  if (Symbol.iterator in h) {
    for (const [k, v] of h as Iterable<[string, string | string[] | undefined]>) out[k.toLowerCase()] = v;
    return out;
  }
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

/** A controller for an answer given without a request (no relay to send it to). */
function settledController(): Dispatcher.DispatchController {
  return { aborted: true, paused: false, reason: null, abort() {}, pause() {}, resume() {} };
}

/**
 * One try of a plain-HTTP request through one relay. A connection to the relay that fails before
 * the request was written goes to the next relay (nothing was sent, the body is untouched); a 407
 * becomes PCL_ERR_RELAY_AUTH; everything else is the destination's answer, passed on as it is.
 */
class RelayHttpAttempt implements Dispatcher.DispatchHandler {
  #started = false;
  #done = false;

  constructor(
    private readonly inner: Dispatcher.DispatchHandler,
    private readonly relay: string,
    private readonly opts: Pick<RelayDialerOptions, 'backoffMs' | 'health'>,
    private readonly next: (f: RelayFailure) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#started = true;
    this.inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (this.#done) return;
    if (statusCode === 407) {
      const f = new RelayFailure(this.relay, 'auth', `relay proxy ${this.relay} refused the credentials (407)`, 407);
      this.opts.health.failed(f, this.opts.backoffMs);
      this.#done = true;
      const err = authError(f);
      this.inner.onResponseError?.(controller, err);
      controller.abort(err);
      return;
    }
    if (statusCode >= 200) this.opts.health.succeeded(this.relay, 'http');
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#done) this.inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.#done) return;
    this.#done = true;
    this.inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#done = true;
    const f = this.#started ? null : httpConnectFailure(this.relay, err);
    if (f !== null) {
      this.opts.health.failed(f, this.opts.backoffMs);
      this.next(f);
      return;
    }
    this.inner.onResponseError?.(controller, err);
  }
}

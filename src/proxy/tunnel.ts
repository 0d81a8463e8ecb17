import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { parseConnectAuthority } from '../policy/index.js';
import { Events } from '../log/events.js';
import type { AccessRecord, CloseCause } from './access.js';
import { Errors } from '../errors/catalogue.js';
import { connState, newAccessRecord, recordAccess, recordOutcome, recordRefusal, type LiveTunnel, type ProxyContext } from './context.js';
import { networkRefusal, writeRefusal, type Refusal } from './refusal.js';
import { routeRequest } from './route.js';
import { identify, isRefusal, realmOf } from './identify.js';
import { identityLabel } from '../policy/index.js';
import { relayJs, relayTunnel, type RelayEnd, type RelayedTunnel } from '../relay/index.js';
import type { Target, TlsChecks } from '../policy/index.js';
import { peekTls } from './tls-peek.js';

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

function swallow(): void {
  // Errors before the tunnel is spliced are handled by the flow that owns the socket; this
  // listener only stops an 'error' from becoming an uncaught exception in between.
}

/**
 * Handle a CONNECT whose head was read and checked (`target` is its request-target, `head` the
 * bytes after it): decide, resolve, dial through the route's dialer, answer 200, splice.
 */
export async function handleConnect(ctx: ProxyContext, target: string, client: Socket, head: Buffer, proxyAuthorization?: string): Promise<void> {
  // The HTTP server removes its own error listener from an upgraded socket: add ours first.
  client.on('error', swallow);
  const started = performance.now();
  const state = connState(client);
  const rec = newAccessRecord('tunnel', Events.TUNNEL, state.ip, 'CONNECT', target);
  const refuse = (r: Refusal): void => {
    writeRefusal(client, r, realmOf(ctx));
    recordRefusal(ctx, rec, r, started);
  };

  if (state.refusal) {
    if (state.identity) rec.identity = identityLabel(state.identity) ?? '';
    return refuse(state.refusal);
  }
  let identity = identify(ctx, state, rec, proxyAuthorization);
  if (identity instanceof Promise) identity = await identity;
  if (isRefusal(identity)) return refuse(identity);
  if (client.destroyed) return recordOutcome(ctx, rec, Errors.CLIENT_CLOSED, started);

  const r = await routeRequest(ctx, rec, state, () => parseConnectAuthority(target), Errors.BAD_AUTHORITY, refuse, identity);
  if (r === null) return;
  const { routed, target: t } = r;

  const t1 = performance.now();
  let upstream: Socket;
  try {
    upstream = await routed.dialer.connect(routed);
  } catch (err) {
    return refuse(networkRefusal(err));
  }
  rec.connectMs = performance.now() - t1;
  const via = routed.dialer.via?.(upstream);
  if (via) rec.upstreamProxy = via;
  if (client.destroyed) {
    // The client gave up while we were dialling.
    upstream.destroy();
    return recordOutcome(ctx, rec, Errors.CLIENT_CLOSED, started);
  }
  rec.status = 200;
  const ruleLabel = rec.rule ?? 'none';
  ctx.observer.upstreamConnected(ruleLabel, routed.dnsMs, rec.connectMs);
  const tunnel = new Tunnel(ctx, client, upstream, rec, started, ruleLabel);
  const checks = routed.rule?.tls ?? null;
  if (checks === null) return tunnel.start(head);
  const report = ctx.policy.mode === 'report' || routed.rule?.mode === 'report';
  tunnel.startInspected(head, t, checks, report);
}

const EMPTY = Buffer.alloc(0);

/**
 * An established tunnel. By default the native relay moves its bytes (src/relay): no JavaScript
 * runs per chunk, and this object only hears when the tunnel ends. Otherwise (relay: js, addon not
 * built, or bytes already buffered in Node) the JavaScript relay moves them (src/relay/js.ts:
 * backpressure that stops reading at once, and with allowHalfOpen on both sides a FIN from one
 * side is passed on while the other direction keeps flowing). Either way, any error or timeout destroys both sockets, and
 * the record is written once both are closed.
 */
class Tunnel implements LiveTunnel {
  private closedSockets = 0;
  /** Bytes written by JavaScript before the hand-over to the native relay (the TLS peek's). */
  private jsUp = 0;
  private jsDown = 0;
  private cause: CloseCause = 'done';
  private lifetimeTimer: NodeJS.Timeout | null = null;
  private relayed: RelayedTunnel | null = null;
  private ended = false;
  /** Made only when someone waits (drain): no promise per tunnel on the hot path. */
  private endWaiters: Array<() => void> | null = null;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly rec: AccessRecord,
    private readonly started: number,
    readonly ruleLabel: string,
  ) {}

  get bytesUp(): number {
    return this.relayed ? this.jsUp + this.relayed.bytesUp : this.upstream.bytesWritten;
  }

  get bytesDown(): number {
    return this.relayed ? this.jsDown + this.relayed.bytesDown : this.upstream.bytesRead;
  }

  /** Relay at once: the 200 and the bytes that came with the CONNECT are written first. */
  start(head: Buffer): void {
    this.open();
    this.relay(ESTABLISHED, head);
  }

  /**
   * Look at the tunnel's TLS handshake first (src/proxy/tls-peek.ts), then relay, or close both
   * sides when a check refuses it (in report mode: log and relay).
   */
  startInspected(head: Buffer, target: Target, checks: TlsChecks, report: boolean): void {
    this.open();
    const { client, upstream, ctx, rec } = this;
    void peekTls({ client, upstream, host: target.host, checks, certificates: ctx.policy.clientCertificates, established: ESTABLISHED, head }).then(
      (outcome) => {
        if (outcome.kind === 'aborted' || client.destroyed || upstream.destroyed) {
          // A socket ended or failed during the peek, or the tunnel was closed (drain, lifetime): its cause stands.
          this.close(this.cause);
          return;
        }
        const { refusal, seen } = outcome;
        rec.tls = seen;
        if (refusal !== null && report) {
          seen.result = 'reported';
          rec.verdict = 'report';
          rec.reason ??= refusal.reason;
          ctx.logger.warn(
            {
              event: Events.REPORT_ONLY,
              client: rec.client,
              target: rec.target,
              rule: rec.rule,
              reason: refusal.reason,
              code: refusal.code,
              detail: refusal.message,
            },
            'report mode: would refuse, letting through',
          );
        } else if (refusal !== null) {
          rec.verdict = 'deny';
          rec.reason = refusal.reason;
          rec.status = refusal.status;
          rec.event = refusal.event;
          rec.code = refusal.code;
          rec.detail = refusal.message;
          this.close('done');
          return;
        }
        this.jsUp = upstream.bytesWritten;
        this.jsDown = upstream.bytesRead;
        this.relay(outcome.toClient, outcome.toUpstream);
      },
      () => this.close('client_error'),
    );
  }

  /** Track the tunnel and own its sockets' errors, closes and lifetime. */
  private open(): void {
    const { client, upstream, ctx } = this;
    ctx.tunnels.add(this);
    ctx.observer.tunnelOpened(this.ruleLabel);
    client.removeListener('error', swallow);
    client.on('error', this.onClientError);
    upstream.on('error', this.onUpstreamError);
    client.on('close', this.onClose);
    upstream.on('close', this.onClose);
    if (ctx.config.timeouts.maxTunnelMs > 0) {
      this.lifetimeTimer = setTimeout(this.onLifetime, ctx.config.timeouts.maxTunnelMs);
      this.lifetimeTimer.unref();
    }
    client.setNoDelay(true);
  }

  /** Hand the sockets to a relay; `toClient` and `toUpstream` are written first. */
  private relay(toClient: Buffer, toUpstream: Buffer): void {
    const { client, upstream, ctx } = this;
    const idle = ctx.config.timeouts.idleMs;
    // Bytes on a TLS client connection are only plain inside Node's TLS layer: the JavaScript relay moves them.
    const tlsClient = client instanceof TLSSocket;
    if (tlsClient && ctx.config.relay !== 'js') this.rec.relayFallback = 'tls_client';
    if (ctx.config.relay !== 'js' && !tlsClient) {
      const r = relayTunnel(client, upstream, { idleMs: idle, toClient, toUpstream: toUpstream.length > 0 ? toUpstream : EMPTY }, this.onRelayEnd);
      if (typeof r !== 'string') {
        this.relayed = r;
        // The relay keeps the idle time; a socket timer left by the HTTP server would only fire into the void.
        client.setTimeout(0);
        return;
      }
      // Asked for native, relayed in JavaScript: the record says why (access log, portcullis_relay_fallbacks_total).
      this.rec.relayFallback = r;
    }
    // One idle timer per tunnel: the client socket sees every byte in either direction (reads
    // one way, writes the other), so a second timer on the upstream socket would only double
    // the timer refresh done for every chunk.
    if (idle > 0) client.setTimeout(idle, this.onIdle);
    if (toClient.length > 0) client.write(toClient);
    // A client may send its TLS ClientHello in the same packet as the CONNECT.
    if (toUpstream.length > 0) upstream.write(toUpstream);
    relayJs(client, upstream);
  }

  closed(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise<void>((resolve) => (this.endWaiters ??= []).push(resolve));
  }

  close(cause: CloseCause): void {
    if (this.cause === 'done') this.cause = cause;
    this.client.destroy();
    this.upstream.destroy();
  }

  /** The relay let go of both sockets: close them, keeping our own cause when we asked it to stop. */
  private readonly onRelayEnd = (end: RelayEnd): void => this.close(end.cause === 'closed' ? this.cause : end.cause);

  // After a side's own FIN, its reset is how a peer that closed completely answers bytes still
  // reaching it: a normal end, as the native relay counts it (fail() in native/relay.c).
  private readonly onClientError = (): void => this.close(this.client.readableEnded ? 'done' : 'client_error');
  private readonly onUpstreamError = (): void => this.close(this.upstream.readableEnded ? 'done' : 'upstream_error');
  private readonly onIdle = (): void => this.close('idle_timeout');
  private readonly onLifetime = (): void => this.close('lifetime');

  private readonly onClose = (): void => {
    if (++this.closedSockets < 2) return;
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    const { rec, ctx } = this;
    ctx.tunnels.delete(this);
    ctx.observer.tunnelClosed(this.ruleLabel);
    rec.bytesUp = this.bytesUp;
    rec.bytesDown = this.bytesDown;
    rec.durationMs = performance.now() - this.started;
    rec.closeCause = this.cause;
    rec.relay = this.relayed ? 'native' : 'js';
    recordAccess(ctx, rec);
    this.ended = true;
    if (this.endWaiters) for (const done of this.endWaiters) done();
  };
}

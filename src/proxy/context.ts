import type { Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyConfig } from '../config/types.js';
import type { ClientIdentity, Policy, Target } from '../policy/index.js';
import type { Authenticator } from '../auth/index.js';
import type { Dialer, Resolver } from '../dial/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { hostPort } from '../util/host-port.js';
import type { AccessRecord, ProxyObserver, Reason } from './access.js';
import type { OutcomeEntry, Refusal } from '../errors/catalogue.js';
import type { RelayChoice, Route } from './route.js';
import type { ShortageLog } from './descriptors.js';

export interface LiveTunnel {
  readonly ruleLabel: string;
  /** Payload bytes so far: client→destination, destination→client. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  close(cause: 'drain'): void;
  /** Resolves once both sockets have closed and the access record is written. */
  closed(): Promise<void>;
}

/** Per client connection, kept on the socket itself (no map lookups on the hot path). */
export interface ConnState {
  ip: string;
  /** Set when the connection was refused at accept time (limits, ACL, drain): answered on its first request. */
  refusal: Refusal | null;
  /** Client ACL verdict was 'report' (global report mode let a denied client in). */
  aclReport: boolean;
  /**
   * The plain-HTTP request this connection carries, once Node's parser read it: the only one it
   * serves (its response closes the connection; see docs/design-notes.md).
   */
  exchange: { readonly req: IncomingMessage; readonly res: ServerResponse } | null;
  /** A verified, allowed client certificate (TLS proxy listener): the connection's identity, no password asked. */
  identity: ClientIdentity | null;
}

export const CONN_STATE = Symbol('portcullis.conn');
export type TrackedSocket = Socket & { [CONN_STATE]?: ConnState };

/** What the tunnel and forwarding handlers need; policy and resolver are swapped on reload. */
export interface ProxyContext {
  policy: Policy;
  resolver: Resolver;
  /** How admitted destinations are reached (replaced on reload: new timeouts, fresh pools). */
  dialer: Dialer;
  /** The relay proxies and their bypass list (upstreamProxy; replaced on reload), or null: everything is dialled directly. */
  relay: RelayChoice | null;
  config: ProxyConfig;
  logger: Logger;
  observer: ProxyObserver;
  accessLog: boolean;
  /** Live tunnels: for drain, and for metrics to read bytes of tunnels that are still open. */
  readonly tunnels: Set<LiveTunnel>;
  /** Reports a file-descriptor shortage once per interval (refusals of that kind are not logged one by one). */
  readonly shortage: ShortageLog;
  /** Proxy Basic authentication (proxy.auth); null = none asked. */
  auth: Authenticator | null;
}

export function connState(socket: Socket): ConnState {
  const tracked: TrackedSocket = socket; // the slot is optional: any Socket is a TrackedSocket
  const s = tracked[CONN_STATE];
  if (s) return s;
  // A socket the tracker did not see (should not happen): treat it as a fresh, unrefused client.
  const fresh: ConnState = { ip: normaliseClientIp(socket.remoteAddress ?? ''), refusal: null, aclReport: false, exchange: null, identity: null };
  tracked[CONN_STATE] = fresh;
  return fresh;
}

/** `::ffff:10.1.2.3` (dual-stack listener) → `10.1.2.3`, so ACLs and limits see one form. */
export function normaliseClientIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** Emit the access record to metrics and (when enabled, or always for refusals) to the log. */
export function recordAccess(ctx: ProxyContext, rec: AccessRecord): void {
  ctx.observer.access(rec);
  if (rec.verdict === 'allow' || rec.verdict === 'report') {
    if (ctx.accessLog) ctx.logger.info(rec, 'access');
  } else if (rec.verdict === 'deny') {
    ctx.logger.info(rec, 'refused');
  } else {
    ctx.logger.warn(rec, 'failed');
  }
}

/** A fresh record for one tunnel or request: a refusal until proven otherwise. */
export function newAccessRecord(kind: AccessRecord['kind'], event: AccessRecord['event'], client: string, method: string, target: string): AccessRecord {
  return { event, kind, client, method, target, rule: null, verdict: 'deny', reason: null, status: 0, bytesUp: 0, bytesDown: 0, durationMs: 0 };
}

export function targetLabel(t: Target): string {
  return hostPort(t.host, t.port);
}

/** Fill in and emit the record of a refusal: network failures are errors, the rest denials. */
export function recordRefusal(ctx: ProxyContext, rec: AccessRecord, r: Refusal, started: number): void {
  rec.verdict = r.kind === 'error' ? 'error' : 'deny';
  rec.reason = r.reason;
  rec.status = r.status;
  rec.event = r.event;
  rec.code = r.code;
  rec.durationMs = performance.now() - started;
  if (r.reason === 'fd_exhausted') {
    // Counted, and reported once per interval by the shortage log instead of a line per connection.
    ctx.observer.access(rec);
    ctx.shortage.note(r.code === 'PCL_ERR_FD_EXHAUSTED' ? 'dial' : 'admit');
    return;
  }
  recordAccess(ctx, rec);
}

/**
 * Emit the record of an accepted request that ended badly with nothing more answered (the client
 * hung up, the destination failed mid-body). The record keeps its own event; `status` is the one
 * already sent, or the entry's when none was (499 for a client that left).
 */
export function recordOutcome(ctx: ProxyContext, rec: AccessRecord, o: OutcomeEntry<Reason>, started: number, status: number = o.status): void {
  rec.verdict = 'error';
  rec.reason = o.reason;
  rec.status = status;
  rec.code = o.code;
  rec.durationMs = performance.now() - started;
  recordAccess(ctx, rec);
}

/**
 * A destination the policy admitted: note rule and DNS time, and when report mode is what let it
 * through (policy or client ACL), log that on its own line — report mode exists to be read.
 */
export function admitRoute(ctx: ProxyContext, rec: AccessRecord, routed: Route, state: ConnState): void {
  rec.rule = routed.rule?.name ?? null;
  rec.dnsMs = routed.dnsMs;
  let reportReason: Reason | null = routed.reportReason;
  if (state.aclReport) reportReason ??= 'client_denied';
  if (reportReason) {
    ctx.logger.warn(
      { event: Events.REPORT_ONLY, client: state.ip, target: rec.target, rule: rec.rule, reason: reportReason },
      'report mode: would refuse, letting through',
    );
  }
  rec.verdict = reportReason ? 'report' : 'allow';
  rec.reason = reportReason;
}

import type { EventCode } from '../log/events.js';
import type { RelayEndCause, RelayFallback } from '../relay/index.js';
import type { RelayEvent } from '../dial/index.js';

export type { RelayEvent } from '../dial/index.js';
import type { TlsSeen } from './tls-peek.js';

/** Why a request was refused or a tunnel ended badly: the catalogue's closed set (a metrics label). */
export type { Reason } from '../errors/catalogue.js';
import type { Reason } from '../errors/catalogue.js';

export type Verdict = 'allow' | 'report' | 'deny' | 'error';

/** How an established tunnel ended: how a relay ends one (but `closed`, which names who asked), or ours. */
export type CloseCause = Exclude<RelayEndCause, 'closed'> | 'lifetime' | 'drain';

/** One record per tunnel, forwarded request or refusal: the access log line and the metrics source. */
export interface AccessRecord {
  event: EventCode;
  kind: 'tunnel' | 'http';
  client: string;
  method: string;
  /** host:port as the client asked for it (normalised when it parsed), or the raw request-target. */
  target: string;
  rule: string | null;
  verdict: Verdict;
  reason: Reason | null;
  status: number;
  /** Bytes client→destination and destination→client (payload, without the CONNECT exchange). */
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  dnsMs?: number;
  connectMs?: number;
  closeCause?: CloseCause;
  /** Tunnels: what moved the bytes (native relay, or Node streams as the fallback). */
  relay?: 'native' | 'js';
  /** Tunnels relayed in JavaScript although the native relay was asked for (relay: auto|native): why. */
  relayFallback?: RelayFallback;
  /** Who asked: the proxy user or the client certificate's subject (absent: anonymous). */
  identity?: string;
  /** A failed proxy authentication: the user name tried, when the htpasswd file knows it (never a password). */
  authUser?: string;
  /** A refusal's why beyond its reason (e.g. the client's groups whose rules leave the destination out). */
  detail?: string;
  /** Stable error code (PCL_ERR_*) where one applies. */
  code?: string;
  /** Tunnels: the relay (upstream) proxy it went through, host:port. */
  upstreamProxy?: string;
  /** Tunnels under TLS inspection: what the handshake showed (docs/tls-inspection.md). */
  tls?: TlsSeen;
}

/**
 * What the data plane tells the outside world (metrics). Calls are synchronous and cheap; an
 * observer must never throw.
 */
export interface ProxyObserver {
  clientConnected(ip: string): void;
  clientDisconnected(): void;
  tunnelOpened(rule: string): void;
  tunnelClosed(rule: string): void;
  upstreamConnected(rule: string, dnsMs: number, connectMs: number): void;
  access(record: AccessRecord): void;
  /** What the relay proxies did (upstreamProxy): up/down, failures, connections carried. */
  relay(event: RelayEvent): void;
}

export const noopObserver: ProxyObserver = {
  clientConnected() {},
  clientDisconnected() {},
  tunnelOpened() {},
  tunnelClosed() {},
  upstreamConnected() {},
  access() {},
  relay() {},
};

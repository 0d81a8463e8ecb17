import type { PortcullisConfig } from '../config/types.js';
import type { BoundAddress, LimitShare } from '../proxy/index.js';

/**
 * Supervisor → worker. The configuration travels over IPC, never in the environment: Linux caps
 * one environment string at 128 KiB (MAX_ARG_STRLEN), which a large allowlist passes, and then
 * every fork would fail.
 */
export type ToWorker =
  /** `share`: this worker's part of the gateway-wide connection limits (see limit-share.ts). */
  | { type: 'portcullis:config'; config: PortcullisConfig; share: LimitShare }
  | { type: 'portcullis:reload'; config: PortcullisConfig; share: LimitShare }
  | { type: 'portcullis:drain' }
  /**
   * A new share of the connection limits (the supervisor rebalances them by load); `round`
   * numbers the rebalance, echoed in the worker's portcullis:share-applied.
   */
  | { type: 'portcullis:share'; share: LimitShare; round: number }
  | { type: 'portcullis:load?'; id: number }
  | { type: 'portcullis:clients?'; id: number; windowMs: number };

/** Worker → supervisor. */
export type ToPrimary =
  /** Sent once the worker listens for messages: the answer is its configuration. */
  | { type: 'portcullis:config?' }
  | { type: 'portcullis:listening'; addresses: BoundAddress[] }
  /** The worker's proxy could not start (ServiceStartError fields): the supervisor stops the gateway. */
  | { type: 'portcullis:start-failed'; configKey: string; cause: string }
  | { type: 'portcullis:clients'; id: number; ips: string[] }
  /** Connections admitted now, and the total share this worker enforces. */
  | { type: 'portcullis:load'; id: number; admitted: number; enforced: number }
  /** The share of rebalance `round` is in force here (sent after setLimitShare): `enforced` is its maxConnections. */
  | { type: 'portcullis:share-applied'; round: number; enforced: number };

export function isMessage<T extends { type: string }>(m: unknown, type: T['type']): m is T {
  return typeof m === 'object' && m !== null && 'type' in m && m.type === type;
}

import type { ProxyConfig } from '../config/types.js';
import type { LimitShare } from '../proxy/index.js';

/**
 * proxy.limits.maxConnections and maxConnectionsPerClient are gateway-wide: an operator reads
 * "10000" as what the host takes, not 10000 per worker (which made the real cap change with the
 * core count: a benchmark from one address was refused at 2 x 1,000 on a 2-core machine). Each of
 * `count` workers enforces its share: the limit divided as evenly as integers allow (the first
 * `limit % count` workers take one more), so the shares add up to the limit exactly. A limit
 * smaller than the worker count still gives every worker 1 (a worker that refuses everything
 * would refuse the clients the kernel happens to hand it): then the sum is `count`.
 *
 * Per client the share is a bound, not a promise: with kernel balancing one address's connections
 * spread over the workers about evenly, so it is refused at about the limit, sooner when the
 * spread is uneven, never later.
 */
export function limitShare(limits: ProxyConfig['limits'], index: number, count: number): LimitShare {
  return {
    maxConnections: shareOf(limits.maxConnections, index, count),
    maxConnectionsPerClient: shareOf(limits.maxConnectionsPerClient, index, count),
  };
}

function shareOf(limit: number, index: number, count: number): number {
  const n = Math.max(1, count);
  return Math.max(1, Math.floor(limit / n) + (index % n < limit % n ? 1 : 0));
}

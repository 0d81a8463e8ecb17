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

/**
 * Shares that follow the load: every worker keeps what it holds now (`admitted`) plus an even part
 * of what is left of `total`, so a worker the kernel hands more connections gets the room an idle
 * one does not use. The targets add up to `total` whenever the workers hold no more than it.
 *
 * The odd units left by the even split go first to the workers that enforce more than their even
 * target now (`enforced`), then in worker order: which worker gets them is arbitrary, and giving
 * them where they already are keeps a momentary odd count (3 and 2 of 10 while connections arrive
 * in turn) from lowering a share (5 to 4) that would refuse the next connection that worker gets.
 */
export function rebalancedShares(total: number, admitted: readonly number[], enforced: readonly number[] = []): number[] {
  const n = admitted.length;
  const held = admitted.reduce((a, b) => a + b, 0);
  const spare = Math.max(0, total - held);
  const even = admitted.map((a) => a + Math.floor(spare / n));
  const above = (i: number): number => Math.max(0, (enforced[i] ?? 0) - (even[i] ?? 0));
  const order = even.map((_, i) => i).sort((a, b) => above(b) - above(a) || a - b);
  const odd = new Set(order.slice(0, spare % n));
  return even.map((t, i) => Math.max(1, t + (odd.has(i) ? 1 : 0)));
}

/**
 * The share changes to send now, given what each worker enforces (`enforced`) and the targets.
 * Decreases go at once; increases only from the room no worker is enforcing: a decrease a worker
 * has not read yet still counts, so the workers never enforce more than `total` between them (the
 * room it frees is handed out on the next round).
 */
export function shareChanges(total: number, enforced: readonly number[], targets: readonly number[]): Array<{ index: number; maxConnections: number }> {
  const changes: Array<{ index: number; maxConnections: number }> = [];
  let room = total - enforced.reduce((a, b) => a + b, 0);
  targets.forEach((t, index) => {
    const e = enforced[index] ?? t;
    if (t < e) changes.push({ index, maxConnections: t });
  });
  targets.forEach((t, index) => {
    const e = enforced[index] ?? t;
    if (t <= e || room <= 0) return;
    const grant = Math.min(t - e, room);
    room -= grant;
    changes.push({ index, maxConnections: e + grant });
  });
  return changes;
}

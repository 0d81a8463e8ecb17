import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { limitShare, rebalancedShares, shareChanges } from '../../src/runtime/limit-share.js';

const limits = (maxConnections: number, maxConnectionsPerClient: number) => ({ maxConnections, maxConnectionsPerClient, maxHeaderBytes: 16384 });

describe('each worker’s share of the gateway-wide connection limits', () => {
  it('divides as evenly as integers allow: 10001 over 4 workers is 2501 + 2500 + 2500 + 2500', () => {
    const shares = [0, 1, 2, 3].map((i) => limitShare(limits(10_001, 1000), i, 4));
    expect(shares.map((s) => s.maxConnections)).toEqual([2501, 2500, 2500, 2500]);
    expect(shares.map((s) => s.maxConnectionsPerClient)).toEqual([250, 250, 250, 250]);
  });

  it('adds up to the limit exactly whenever the limit is at least the worker count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 1_000_000 }), (count, limit) => {
        fc.pre(limit >= count);
        let sum = 0;
        for (let i = 0; i < count; i++) sum += limitShare(limits(limit, limit), i, count).maxConnections;
        expect(sum).toBe(limit);
      }),
    );
  });

  it('gives every worker at least 1, so none refuses everything the kernel hands it', () => {
    expect([0, 1, 2].map((i) => limitShare(limits(2, 1), i, 3))).toEqual([
      { maxConnections: 1, maxConnectionsPerClient: 1 },
      { maxConnections: 1, maxConnectionsPerClient: 1 },
      { maxConnections: 1, maxConnectionsPerClient: 1 },
    ]);
  });

  it('is the whole limit for a single worker', () => {
    expect(limitShare(limits(10_000, 1000), 0, 1)).toEqual({ maxConnections: 10_000, maxConnectionsPerClient: 1000 });
  });
});

describe('rebalancing the shares by load', () => {
  it('gives a busy worker the room an idle one does not use', () => {
    // Limit 10, worker 0 holds 5 (its whole even share), worker 1 none: 5 are left, split evenly on top.
    expect(rebalancedShares(10, [5, 0])).toEqual([8, 2]);
    expect(rebalancedShares(10, [0, 0])).toEqual([5, 5]);
  });

  it('gives the odd unit to a worker that already enforces it, so an odd count in passing lowers no share', () => {
    // 3 and 2 of 10 held while connections arrive in turn, both enforcing 5: 5 and 5 stay (not 6 and 4).
    expect(rebalancedShares(10, [3, 2], [5, 5])).toEqual([5, 5]);
    expect(shareChanges(10, [5, 5], rebalancedShares(10, [3, 2], [5, 5]))).toEqual([]);
    // A busy worker still gets the idle one's room: 7 and 3 (the odd unit stays with the idle one).
    expect(rebalancedShares(10, [5, 0], [5, 5])).toEqual([7, 3]);
    expect(rebalancedShares(10, [0, 5], [5, 5])).toEqual([3, 7]);
  });

  it('applies decreases at once and increases only from room nobody enforces, so the sum never passes the limit', () => {
    // Round 1: both enforce 5; worker 1 must go down to 2 first, worker 0 waits.
    expect(shareChanges(10, [5, 5], [8, 2])).toEqual([{ index: 1, maxConnections: 2 }]);
    // Round 2: worker 1 enforces 2 now: the 3 it freed go to worker 0.
    expect(shareChanges(10, [5, 2], [8, 2])).toEqual([{ index: 0, maxConnections: 8 }]);
  });

  it('never lets what the workers enforce add up to more than the limit, whatever they hold and whatever they enforce', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 8 })
          .chain((n) =>
            fc.tuple(
              fc.integer({ min: 2 * n, max: 10_000 }),
              fc.array(fc.nat(3_000), { minLength: n, maxLength: n }),
              fc.array(fc.nat(3_000), { minLength: n, maxLength: n }),
            ),
          ),
        ([total, held, enforcedRaw]) => {
          // What workers enforce adds up to at most the limit (the invariant every round keeps).
          let budget = total;
          const enforced = enforcedRaw.map((e) => {
            const v = Math.min(e, budget);
            budget -= v;
            return v;
          });
          const next = [...enforced];
          for (const c of shareChanges(total, enforced, rebalancedShares(total, held, enforced))) next[c.index] = c.maxConnections;
          // A decrease not yet read still counts: the worst moment is the larger of old and new for each.
          const worst = next.reduce((sum, v, i) => sum + Math.max(v, enforced[i] ?? 0), 0);
          expect(worst).toBeLessThanOrEqual(total);
        },
      ),
    );
  });
});

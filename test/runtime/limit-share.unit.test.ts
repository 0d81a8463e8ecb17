import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { limitShare } from '../../src/runtime/limit-share.js';

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

/**
 * The relay reports tunnel ends to JavaScript in batches (one thread-safe call carries every end
 * found while the previous one was pending). An exception thrown by one tunnel's end callback must
 * not cost the other tunnels of that batch their end: before, every later call in the batch failed
 * silently, and those tunnels' sockets were never closed. The exception itself still surfaces as an
 * uncaughtException, which the gateway's crash guard logs (src/runtime/shared.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayEnd } from '../../src/relay/index.js';
import { closed, holdUntilPendingEnds, hungUp, nativeRelayExpected, startRelayBench, type RelayBench, type RelayedPair } from '../helpers/relayed.js';

const deadline = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

describe.runIf(nativeRelayExpected)('an end callback that throws', () => {
  let bench: RelayBench;
  beforeAll(async () => {
    bench = await startRelayBench();
  });
  afterAll(() => bench.close());

  it('does not stop the rest of its batch from being delivered and closed, and the process lives on', async () => {
    const TUNNELS = 12;
    const THROWERS = new Set([0, 5, 11]); // first, middle and last of the batch
    const ends = new Map<number, RelayEnd>();
    const uncaught: unknown[] = [];
    // Stands in for the gateway's crash guard (and tells vitest the error is handled).
    const guard = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', guard);
    try {
      const pairs: RelayedPair[] = [];
      for (let i = 0; i < TUNNELS; i++) {
        pairs.push(
          await bench.open((end, pair) => {
            ends.set(i, end);
            // What the proxy's tunnel does with an end: close both sockets.
            pair.client.destroy();
            pair.upstream.destroy();
            if (THROWERS.has(i)) throw new Error(`end callback ${i} failed`);
          }),
        );
      }
      // End them all at once: each destroy asks the relay to let go. Holding this thread until the
      // relay thread has reported all of them makes them one batch, the case under test.
      for (const p of pairs) p.client.destroy();
      expect(holdUntilPendingEnds(TUNNELS)).toBe(TUNNELS);

      // Bounded, so a lost end fails the assertions below instead of the test's timeout.
      await Promise.race([Promise.all(pairs.flatMap((p) => [closed(p.client), closed(p.upstream), hungUp(p.user)])), deadline(5_000)]);
      expect([...ends.keys()].sort((a, b) => a - b)).toEqual([...Array(TUNNELS).keys()]);
      expect(new Set([...ends.values()].map((e) => e.cause))).toEqual(new Set(['closed']));
      expect(pairs.flatMap((p, i) => (p.client.closed && p.upstream.closed ? [] : [i]))).toEqual([]);
      // Each thrown exception surfaced once, in delivery order, none swallowed.
      expect(uncaught.map((e) => (e instanceof Error ? e.message : String(e)))).toEqual([...THROWERS].map((i) => `end callback ${i} failed`));
    } finally {
      process.off('uncaughtException', guard);
    }

    // The relay itself is unharmed: a new tunnel is carried and ends normally.
    const after = await new Promise<RelayEnd>((resolve, reject) => {
      bench
        .open((end, pair) => {
          pair.client.destroy();
          pair.upstream.destroy();
          resolve(end);
        })
        .then((p) => p.user.end(), reject);
    });
    expect(after.cause).toBe('done');
  });
});

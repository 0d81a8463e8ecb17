/**
 * The relay thread's stop flag, seen from outside: stopNativeRelay() while tunnels are busy (bytes
 * held back by a client that does not read) ends every one of them as `closed`, lets their owners
 * close the sockets, and the thread is gone; the next tunnel starts a new thread. Several cycles
 * in a row, so a stop that left anything behind (a thread, a slot, a queued command) shows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopNativeRelay, type RelayEnd } from '../../src/relay/index.js';
import { closed, hungUp, nativeRelayExpected, startRelayBench, type RelayBench, type RelayedPair } from '../helpers/relayed.js';

/** Threads of this process named by the relay (pthread_setname_np). */
function relayThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'pcl-relay').length;
}

describe.runIf(nativeRelayExpected)('stopping the native relay', () => {
  let bench: RelayBench;
  beforeAll(async () => {
    bench = await startRelayBench();
  });
  afterAll(() => bench.close());

  it('ends busy tunnels cleanly and restarts, cycle after cycle', { timeout: 60_000 }, async () => {
    const CYCLES = 4;
    const TUNNELS = 6;
    const PAYLOAD = Buffer.alloc(8 * 1024 * 1024, 0x61);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const ends: RelayEnd[] = [];
      const pairs: RelayedPair[] = [];
      for (let i = 0; i < TUNNELS; i++) {
        pairs.push(
          await bench.open((end, pair) => {
            ends.push(end);
            pair.client.destroy();
            pair.upstream.destroy();
          }),
        );
      }
      expect(relayThreads()).toBe(1);
      // Half of them busy: the echo comes back to a client that does not read, so the relay holds
      // bytes it could not deliver when the stop comes.
      for (const p of pairs.slice(0, TUNNELS / 2)) p.user.write(PAYLOAD);
      await new Promise<void>((resolve) => {
        const check = (): void => (pairs[0] && pairs[0].relayed.bytesUp > 0 ? resolve() : void setImmediate(check));
        check();
      });

      await stopNativeRelay();
      expect(ends.map((e) => e.cause)).toEqual(Array(TUNNELS).fill('closed'));
      await Promise.all(pairs.flatMap((p) => [closed(p.client), closed(p.upstream), hungUp(p.user)]));
      expect(relayThreads()).toBe(0);
      for (const p of pairs) p.user.destroy();
    }
    // And after the last stop, one more tunnel runs to its normal end on a fresh thread.
    const end = await new Promise<RelayEnd>((resolve, reject) => {
      bench
        .open((e, pair) => {
          pair.client.destroy();
          pair.upstream.destroy();
          resolve(e);
        })
        .then((p) => p.user.end(), reject);
    });
    expect(end.cause).toBe('done');
    expect(relayThreads()).toBe(1);
  });

  it('stopping again, with no tunnel and no thread, is harmless', async () => {
    await stopNativeRelay();
    await stopNativeRelay();
    expect(relayThreads()).toBe(0);
  });
});

/**
 * The native relay under many concurrent tunnels that end every way a client can end one, while
 * slots are reused: every tunnel that finishes cleanly gets back exactly its own bytes, every
 * tunnel went through the native relay, and at the end no tunnel, connection or descriptor is
 * left. Runs in-process, so the fd count is the relay's.
 *
 * Replay: each tunnel's plan (size, chunking, how it ends) comes from its own PRNG seeded with
 * (run seed, tunnel number), so a run's set of tunnels does not depend on how the 60 concurrent
 * clients interleave. The run seed is random unless FC_SEED is set; a failure names it:
 *   FC_SEED=<seed> npx vitest run test/relay/concurrency.test.ts
 * (the interleaving itself is the scheduler's and does not replay; the tunnels do.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { waitForFdCount, openFdCount } from '../helpers/fds.js';
import { echoInProcessForSuite, waitUntilIdle } from '../helpers/inprocess.js';
import { requireNativeRelay } from '../helpers/relay.js';

const native = requireNativeRelay();
const suite = echoInProcessForSuite();
// FC_SEED is validated as an integer in test/helpers/fc-seed.ts (also used by fast-check).
const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 2 ** 31);
const WARM_UP = 10;
const TUNNELS = 600;
const CONCURRENCY = 60;

/** Small seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tunnel n's own PRNG: the same for the same (seed, n), whatever ran before it. */
const tunnelRng = (n: number): (() => number) => rng(Math.imul(SEED ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(n + 1, 0xc2b2ae35));

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Tunnel n: random size, written in random chunks; then a clean end, a reset, or an abrupt close. */
async function oneTunnel(n: number, ends: Record<string, number>): Promise<void> {
  const rand = tunnelRng(n);
  const t = await openTunnel(suite.gw.port, `echo.example.com:${suite.echo.port}`);
  t.socket.on('error', () => {});
  expect(t.status).toBe(200);
  const size = 1 + Math.floor(rand() * rand() * 512 * 1024);
  const payload = randomBytes(size); // content need not replay; sizes and endings do
  const how = rand();
  if (how < 0.7) {
    // Clean: everything echoed back in order, then our FIN comes back as the echo's.
    const back = readBytes(t.socket, size, t.rest);
    for (let off = 0; off < size;) {
      const len = Math.min(size - off, 1 + Math.floor(rand() * 96 * 1024));
      t.socket.write(payload.subarray(off, off + len));
      off += len;
      if (rand() < 0.2) await new Promise((r) => setImmediate(r));
    }
    expect(sha(await back)).toBe(sha(payload));
    const closed = new Promise<void>((r) => t.socket.once('close', () => r()));
    t.socket.end();
    t.socket.resume();
    await closed;
    ends.clean = (ends.clean ?? 0) + 1;
  } else if (how < 0.85) {
    t.socket.write(payload);
    // Not synchronisation: half the resets come a timer turn after the write, so some land while
    // the relay is moving the bytes rather than before it saw them.
    if (rand() < 0.5) await new Promise((r) => setTimeout(r, 1));
    t.socket.resetAndDestroy();
    ends.reset = (ends.reset ?? 0) + 1;
  } else {
    t.socket.write(payload.subarray(0, Math.min(size, 4096)));
    t.socket.destroy();
    ends.abrupt = (ends.abrupt ?? 0) + 1;
  }
}

/** Runs tunnels first..first+count-1 over `concurrency` clients; a failure names the tunnel and the seed. */
async function runTunnels(first: number, count: number, concurrency: number, ends: Record<string, number>): Promise<void> {
  let next = first;
  const client = async (): Promise<void> => {
    while (next < first + count) {
      const n = next++;
      await oneTunnel(n, ends).catch((err: unknown) => {
        throw new Error(`tunnel ${n} failed (replay: FC_SEED=${SEED}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
}

it(`keeps ${CONCURRENCY} concurrent tunnels apart over ${TUNNELS} tunnels ending every way, and leaves nothing behind`, { timeout: 120_000 }, async (ctx) => {
  ctx.skip(!native.available, native.skipNote);
  ctx.onTestFailed(() => console.error(`relay concurrency: replay with FC_SEED=${SEED}`));
  const ends: Record<string, number> = {};
  // Warm-up: lazily created handles (the relay thread itself among them) are not leaks.
  await runTunnels(0, WARM_UP, WARM_UP, ends);
  await waitUntilIdle(suite.gw);
  await suite.echo.allClosed(); // the echo server's side of the warm-up tunnels too
  const fdsBefore = openFdCount();

  await runTunnels(WARM_UP, TUNNELS, CONCURRENCY, ends);

  await waitUntilIdle(suite.gw);
  await suite.echo.allClosed();
  expect(suite.gw.gateway.proxy.openTunnels).toBe(0);
  expect(suite.gw.gateway.proxy.activeConnections).toBe(0);
  expect(await waitForFdCount(fdsBefore + 2)).toBeLessThanOrEqual(fdsBefore + 2);
  // The native relay carried every one of them (the relay writes the 200 itself, so no client
  // byte can be buffered in Node before the hand-over and send a tunnel to the JS fallback).
  expect(suite.gw.relayed).toEqual({ native: WARM_UP + TUNNELS, js: 0 });
  // Every way of ending was exercised (600 draws at 70/15/15 %: all three, unless the PRNG is broken).
  expect(Object.keys(ends).sort()).toEqual(['abrupt', 'clean', 'reset']);
});

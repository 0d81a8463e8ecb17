/**
 * The native relay under many concurrent tunnels that end every way a client can end one, while
 * slots are reused: every tunnel that finishes cleanly gets back exactly its own bytes, and at the
 * end no tunnel, connection or descriptor is left. Runs in-process, so the fd count is the relay's
 * (test/relay/native.test.ts makes sure the native relay is there on CI).
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { waitForFdCount, openFdCount } from '../helpers/fds.js';
import { echoInProcessForSuite, waitUntilIdle } from '../helpers/inprocess.js';

const suite = echoInProcessForSuite();

/** Small seeded PRNG (mulberry32): a failing run can be replayed with the same seed. */
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

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** One tunnel: random size, written in random chunks; then a clean end, a reset, or an abrupt close. */
async function oneTunnel(rand: () => number, ends: Record<string, number>): Promise<void> {
  const t = await openTunnel(suite.gw.port, `echo.example.com:${suite.echo.port}`);
  t.socket.on('error', () => {});
  expect(t.status).toBe(200);
  const size = 1 + Math.floor(rand() * rand() * 512 * 1024);
  const payload = randomBytes(size); // content need not replay; sizes and endings do
  const how = rand();
  if (how < 0.7) {
    // Clean: everything echoed back in order, then our FIN comes back as the echo's.
    const back = readBytes(t.socket, size, t.rest);
    for (let off = 0; off < size; ) {
      const n = Math.min(size - off, 1 + Math.floor(rand() * 96 * 1024));
      t.socket.write(payload.subarray(off, off + n));
      off += n;
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
    if (rand() < 0.5) await new Promise((r) => setTimeout(r, 1));
    t.socket.resetAndDestroy();
    ends.reset = (ends.reset ?? 0) + 1;
  } else {
    t.socket.write(payload.subarray(0, Math.min(size, 4096)));
    t.socket.destroy();
    ends.abrupt = (ends.abrupt ?? 0) + 1;
  }
}

it('keeps 60 concurrent tunnels apart over 600 tunnels ending every way, and leaves nothing behind', { timeout: 120_000 }, async () => {
  const rand = rng(20261128);
  const ends: Record<string, number> = {};
  // Warm-up: lazily created handles (the relay thread itself among them) are not leaks.
  await Promise.all(Array.from({ length: 10 }, () => oneTunnel(rand, ends)));
  await waitForFdCount(0, 300);
  const fdsBefore = openFdCount();

  let left = 600;
  const worker = async (): Promise<void> => {
    while (left-- > 0) await oneTunnel(rand, ends);
  };
  await Promise.all(Array.from({ length: 60 }, worker));

  await waitUntilIdle(suite.gw);
  expect(suite.gw.gateway.proxy.openTunnels).toBe(0);
  expect(suite.gw.gateway.proxy.activeConnections).toBe(0);
  expect(await waitForFdCount(fdsBefore + 2)).toBeLessThanOrEqual(fdsBefore + 2);
  // Every way of ending was exercised.
  expect(Object.keys(ends).sort()).toEqual(['abrupt', 'clean', 'reset']);
});

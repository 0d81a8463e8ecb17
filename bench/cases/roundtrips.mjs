// Case 2 — 64 B ping-pong round trips per second over 50 long-lived tunnels.
// Tunnels are opened before the clock starts (genSetup); each tunnel then
// loops write 64 B -> read 64 B echo for a fixed duration.
import { fileURLToPath } from 'node:url';
import { openTunnel, makeReader } from '../lib/tunnel.mjs';
import { cpuFields, split } from '../lib/gens.mjs';
import { targetArgs } from '../lib/native.mjs';

export const info = {
  name: 'roundtrips',
  title: '64 B round trips/s over 50 open tunnels',
  metrics: [{ key: 'roundTripsPerSec', label: 'round trips/s (50 tunnels)', better: 'higher', digits: 0 }],
};

export async function run(ctx) {
  const tunnels = ctx.opts.tunnels ?? 50;
  const durationMs = ctx.quick ? 3000 : 5000;
  const parts = split(tunnels, ctx.gens);
  const r = await ctx.runGens(
    fileURLToPath(import.meta.url),
    parts.map((n) => ({ proxy: ctx.target.proxy, port: ctx.ports.echo, tunnels: n, durationMs })),
  );
  const count = r.results.reduce((a, x) => a + x.count, 0);
  const errors = r.results.reduce((a, x) => a + x.errors, 0);
  return {
    roundTripsPerSec: count / (durationMs / 1000),
    errors,
    ...cpuFields(r),
  };
}

/** Same task for the native generator (bench/native/loadgen.c, used by default with --gen native). */
export function nativeArgs(p) {
  return ['--mode', 'roundtrips', ...targetArgs(p.proxy, p.port), '--conc', p.tunnels, '--duration-ms', p.durationMs, '--payload', 64];
}

export async function genSetup(p) {
  const socks = [];
  for (let i = 0; i < p.tunnels; i++) socks.push(await openTunnel(p.proxy, p.port));
  return socks;
}

export async function genRun(socks, p) {
  const payload = Buffer.alloc(64, 0x78);
  let count = 0,
    errors = 0;
  const deadline = Date.now() + p.durationMs;
  await Promise.all(
    socks.map(async (s) => {
      const readN = makeReader(s);
      try {
        while (Date.now() < deadline) {
          s.write(payload);
          await readN(64);
          count++;
        }
      } catch {
        errors++;
      }
      s.destroy();
    }),
  );
  return { count, errors };
}

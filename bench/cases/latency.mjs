// Case 3 — latency of sequential 64 B round trips over ONE tunnel.
// 20,000 round trips (--quick: 5,000) after 500 warm-up ones; p50/p99 in µs.
// The report adds "added" = target minus direct (same run).
import { fileURLToPath } from 'node:url';
import { openTunnel, makeReader, percentile } from '../lib/tunnel.mjs';
import { cpuFields } from '../lib/gens.mjs';
import { targetArgs } from '../lib/native.mjs';

export const info = {
  name: 'latency',
  title: 'one tunnel, sequential 64 B round trips',
  metrics: [
    { key: 'p50us', label: 'RTT p50 µs', better: 'lower', digits: 1 },
    { key: 'p99us', label: 'RTT p99 µs', better: 'lower', digits: 1 },
    { key: 'addedP50us', label: 'added p50 µs vs direct', better: 'lower', digits: 1, derived: 'p50us' },
    { key: 'addedP99us', label: 'added p99 µs vs direct', better: 'lower', digits: 1, derived: 'p99us' },
  ],
};

export async function run(ctx) {
  const n = ctx.quick ? 5000 : 20000;
  const r = await ctx.runGens(fileURLToPath(import.meta.url), [{ proxy: ctx.target.proxy, port: ctx.ports.echo, n }]);
  return {
    ...r.results[0],
    ...cpuFields(r),
  };
}

/** Same task for the native generator (bench/native/loadgen.c, used by default with --gen native). */
export function nativeArgs(p) {
  return ['--mode', 'latency', ...targetArgs(p.proxy, p.port), '--n', p.n, '--warmup', 500, '--payload', 64];
}

export async function genSetup(p) {
  return openTunnel(p.proxy, p.port);
}

export async function genRun(s, p) {
  const payload = Buffer.alloc(64, 0x78);
  const readN = makeReader(s);
  for (let i = 0; i < 500; i++) {
    s.write(payload);
    await readN(64);
  }
  const lat = new Float64Array(p.n);
  for (let i = 0; i < p.n; i++) {
    const t0 = process.hrtime.bigint();
    s.write(payload);
    await readN(64);
    lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  s.destroy();
  const sorted = Array.from(lat).sort((a, b) => a - b);
  return { p50us: percentile(sorted, 50), p90us: percentile(sorted, 90), p99us: percentile(sorted, 99), maxus: sorted[sorted.length - 1], n: p.n };
}

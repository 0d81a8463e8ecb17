// Case 1 — new tunnels per second.
// C concurrent loops (split over the generator processes); each iteration:
// TCP connect to the proxy, CONNECT 127.0.0.1:<echo>, read the 200 head,
// send 64 B, read the 64 B echo, close. Direct = TCP connect to echo + echo.
import { fileURLToPath } from 'node:url';
import { openTunnel, makeReader } from '../lib/tunnel.mjs';
import { cpuFields, split } from '../lib/gens.mjs';
import { targetArgs } from '../lib/native.mjs';

export const info = {
  name: 'tunnels',
  title: 'new CONNECT tunnels/s (50 conc., 64 B echo each)',
  metrics: [{ key: 'tunnelsPerSec', label: 'new tunnels/s', better: 'higher', digits: 0 }],
};

export async function run(ctx) {
  const concurrency = ctx.opts.concurrency ?? 50;
  const durationMs = ctx.quick ? 3000 : 5000;
  const parts = split(concurrency, ctx.gens);
  const r = await ctx.runGens(
    fileURLToPath(import.meta.url),
    parts.map((c) => ({ proxy: ctx.target.proxy, port: ctx.ports.echo, concurrency: c, durationMs })),
  );
  const ok = r.results.reduce((a, x) => a + x.ok, 0);
  const errors = r.results.reduce((a, x) => a + x.errors, 0);
  return {
    tunnelsPerSec: ok / (durationMs / 1000),
    errors,
    ...cpuFields(r),
    firstError: r.results.find((x) => x.firstError)?.firstError,
  };
}

/** Same task for the native generator (bench/native/loadgen.c, used by default with --gen native). */
export function nativeArgs(p) {
  return ['--mode', 'tunnels', ...targetArgs(p.proxy, p.port), '--conc', p.concurrency, '--duration-ms', p.durationMs, '--timeout-ms', 5000];
}

export async function genRun(_, p) {
  const payload = Buffer.alloc(64, 0x78);
  let ok = 0,
    errors = 0,
    firstError = null;
  const deadline = Date.now() + p.durationMs;
  async function loop() {
    while (Date.now() < deadline) {
      let s;
      try {
        s = await openTunnel(p.proxy, p.port, { timeoutMs: 5000 });
        const readN = makeReader(s);
        s.write(payload);
        await readN(64);
        ok++;
      } catch (err) {
        errors++;
        firstError ??= String(err.message);
        await new Promise((r) => setTimeout(r, 5));
      } finally {
        s?.destroy();
      }
    }
  }
  await Promise.all(Array.from({ length: p.concurrency }, loop));
  return { ok, errors, firstError };
}

// Case 4 — bulk throughput, client -> upstream (upload direction, like agents).
// 1 tunnel, then 16 tunnels, each writes 64 KiB chunks as fast as the socket
// drains for a fixed duration, into the upstream *sink* (discards, counts).
// MB/s = bytes counted by the sink during the run / run time (MB = 10^6 B),
// i.e. only bytes actually delivered through the proxy are counted.
import { fileURLToPath } from 'node:url';
import { openTunnel } from '../lib/tunnel.mjs';
import { cpuFields, split } from '../lib/gens.mjs';
import { targetArgs } from '../lib/native.mjs';

export const info = {
  name: 'bulk',
  title: 'bulk upload MB/s into a sink',
  metrics: [
    { key: 'mbps1', label: 'bulk MB/s, 1 tunnel', better: 'higher', digits: 0 },
    { key: 'mbps16', label: 'bulk MB/s, 16 tunnels', better: 'higher', digits: 0 },
  ],
};

async function one(ctx, tunnels, durationMs) {
  const parts = split(tunnels, Math.min(ctx.gens, tunnels));
  let before = 0,
    after = 0,
    t0 = 0n;
  const r = await ctx.runGens(
    fileURLToPath(import.meta.url),
    parts.map((n) => ({ proxy: ctx.target.proxy, port: ctx.ports.sink, tunnels: n, durationMs })),
    {
      onReady: async () => {
        before = await ctx.upstream.rpc('sinkBytes');
        t0 = process.hrtime.bigint();
      },
      onDone: async () => {
        after = await ctx.upstream.rpc('sinkBytes');
      },
    },
  );
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    mbps: (after - before) / 1e6 / sec,
    errors: r.results.reduce((a, x) => a + x.errors, 0),
    ...cpuFields(r),
  };
}

export async function run(ctx) {
  const durationMs = ctx.quick ? 3000 : 5000;
  const a = await one(ctx, 1, durationMs);
  const b = await one(ctx, 16, durationMs);
  return {
    mbps1: a.mbps,
    mbps16: b.mbps,
    errors: a.errors + b.errors,
    proxyCpuPct1: a.proxyCpuPct,
    genCpuPct1: a.genCpuPct,
    proxyCpuPct16: b.proxyCpuPct,
    genCpuPct16: b.genCpuPct,
    genUserCpuPct16: b.genUserCpuPct,
    upstreamCpuPct16: b.upstreamCpuPct,
    sysCpuPct16: b.sysCpuPct,
  };
}

/** Same task for the native generator (bench/native/loadgen.c, used by default with --gen native). */
export function nativeArgs(p) {
  return ['--mode', 'bulk', ...targetArgs(p.proxy, p.port), '--conc', p.tunnels, '--duration-ms', p.durationMs, '--chunk', 65536];
}

export async function genSetup(p) {
  const socks = [];
  for (let i = 0; i < p.tunnels; i++) socks.push(await openTunnel(p.proxy, p.port));
  return socks;
}

export async function genRun(socks, p) {
  const chunk = Buffer.alloc(65536, 0x7a);
  const deadline = Date.now() + p.durationMs;
  let errors = 0;
  await Promise.all(
    socks.map(async (s) => {
      s.resume(); // the sink never answers; keep the socket flowing anyway
      let failed = false;
      s.on('error', () => {
        failed = true;
      });
      while (!failed && Date.now() < deadline) {
        if (!s.write(chunk)) {
          await new Promise((resolve) => {
            const done = () => {
              clearTimeout(t);
              s.off('drain', done);
              s.off('close', done);
              resolve();
            };
            const t = setTimeout(done, Math.max(1, deadline - Date.now()));
            s.once('drain', done);
            s.once('close', done);
          });
        }
      }
      if (failed) errors++;
      s.destroy();
    }),
  );
  return { errors };
}

// Case 6 — proxy memory per idle tunnel.
// RSS of the proxy's whole process tree (sum of VmRSS of the PID and its
// descendants) is sampled after start-up, then N tunnels (default 9,000) are
// opened from 2+ generator processes (each carries one 64 B echo, as a real
// tunnel would have carried a handshake, then idles), then after 3 s of
// idling RSS is sampled again. KB/tunnel = (after - before) / N (KiB).
import { fileURLToPath } from 'node:url';
import { openTunnel, makeReader } from '../lib/tunnel.mjs';
import { split } from '../lib/gens.mjs';
import { treeRssKiB, sleep } from '../lib/procs.mjs';

export const info = {
  name: 'idle-memory',
  title: 'proxy RSS per idle tunnel',
  metrics: [{ key: 'kbPerTunnel', label: 'KiB RSS per idle tunnel', better: 'lower', digits: 1 }],
};

export async function run(ctx) {
  if (!ctx.target.pid) return { kbPerTunnel: null, note: 'no proxy process' };
  const n = ctx.opts.idleTunnels ?? (ctx.quick ? 3000 : 9000);
  const gens = Math.max(2, Math.ceil(n / 5000));
  await sleep(500);
  const before = treeRssKiB(ctx.target.pid);
  let after = 0,
    opened = 0;
  const r = await ctx.runGens(
    fileURLToPath(import.meta.url),
    split(n, gens).map((k) => ({ proxy: ctx.target.proxy, port: ctx.ports.echo, tunnels: k })),
    {
      onReady: async () => {
        await sleep(3000);
        after = treeRssKiB(ctx.target.pid);
      },
    },
  );
  opened = r.results.reduce((a, x) => a + x.opened, 0);
  const errors = r.results.reduce((a, x) => a + x.errors, 0);
  return {
    kbPerTunnel: opened ? (after - before) / opened : null,
    rssBeforeKiB: before,
    rssAfterKiB: after,
    opened,
    errors,
    firstError: r.results.find((x) => x.firstError)?.firstError,
  };
}

export async function genSetup(p) {
  const socks = [];
  let errors = 0,
    firstError = null,
    next = 0;
  const payload = Buffer.alloc(64, 0x78);
  async function opener() {
    while (next < p.tunnels) {
      next++;
      try {
        const s = await openTunnel(p.proxy, p.port, { timeoutMs: 15000 });
        const readN = makeReader(s);
        s.write(payload);
        await readN(64);
        s.on('error', () => {});
        socks.push(s);
      } catch (err) {
        errors++;
        firstError ??= err.message;
      }
    }
  }
  await Promise.all(Array.from({ length: 100 }, opener));
  return { socks, errors, firstError };
}

export async function genRun(st) {
  for (const s of st.socks) s.destroy();
  return { opened: st.socks.length, errors: st.errors, firstError: st.firstError };
}

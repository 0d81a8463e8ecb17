// Case 5 — plain-HTTP forwarded requests/s.
// autocannon (50 connections, keep-alive, no pipelining) aimed at the proxy's
// address, every request in absolute form:
//   GET http://127.0.0.1:<http>/ HTTP/1.1   Host: 127.0.0.1:<http>
// (autocannon has no proxy support; it writes `path` verbatim into the request
// line, which is exactly the absolute-form a forward proxy expects.) Direct =
// the same load in origin-form straight at the upstream HTTP server.
// Any non-2xx or error is counted and reported.
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

export const info = {
  name: 'http',
  title: 'plain-HTTP forwarded requests/s (50 keep-alive conns)',
  metrics: [{ key: 'reqPerSec', label: 'plain-HTTP req/s', better: 'higher', digits: 0 }],
};

export async function run(ctx) {
  const durationSec = ctx.quick ? 3 : 5;
  const r = await ctx.runGens(fileURLToPath(import.meta.url), [
    {
      proxy: ctx.target.proxy,
      httpPort: ctx.ports.http,
      connections: ctx.opts.connections ?? 50,
      durationSec,
    },
  ]);
  return { ...r.results[0], proxyCpuPct: r.proxyCpuPct, genCpuPct: r.genCpuPct, upstreamCpuPct: r.upstreamCpuPct, sysCpuPct: r.sysCpuPct };
}

export async function genRun(_, p) {
  const origin = `127.0.0.1:${p.httpPort}`;
  const url = p.proxy ? `http://${p.proxy.host}:${p.proxy.port}` : `http://${origin}`;
  const path = p.proxy ? `http://${origin}/` : '/';
  const r = await autocannon({
    url,
    connections: p.connections,
    pipelining: 1,
    duration: p.durationSec,
    requests: [{ method: 'GET', path, headers: { host: origin } }],
  });
  return {
    reqPerSec: r['2xx'] / r.duration,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    latencyP99ms: r.latency.p99,
    latencyP50ms: r.latency.p50,
  };
}

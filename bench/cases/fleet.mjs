// Case 7 — agent-fleet simulation.
//
// N simulated agents, spread over max(2, ceil(N/2500)) generator processes
// (TCP_NODELAY everywhere). Agent starts are staggered evenly over one period
// (6 s). Every period each agent uploads one frame to the upstream "fleet"
// server through its CONNECT tunnel:
//     client -> [u32 BE 204800][204800 random bytes]   (stands in for TLS records)
//     server -> [u32 BE 1024][1024 bytes]              (once the whole frame arrived)
// 9 in 10 agents keep one tunnel open for the whole step (opened before their
// first upload, not timed); 1 in 10 opens a fresh tunnel for every upload and
// closes it after the answer (their latency includes TCP connect + CONNECT).
// Latency = first byte sent -> answer fully received. An upload fails if the
// tunnel cannot be opened, closes, or the answer takes > 10 s.
// No upload starts after the step's duration; in-flight ones are awaited.
//
// Per step: uploads, errors, p50/p99, proxy CPU% (utime+stime of its process
// tree over the step), proxy peak RSS (sampled every second), generator CPU%.
// A step is OK when errors = 0 and p99 < 1 s; steps stop at the first failing
// one (unless --fleet-all-steps). Headline = largest OK N.
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { openTunnel, makeReader, percentile } from '../lib/tunnel.mjs';
import { split } from '../lib/gens.mjs';
import { treeRssKiB, sleep } from '../lib/procs.mjs';

const UPLOAD = 200 * 1024;
const ANSWER = 4 + 1024;
const PERIOD_MS = 6000;
const UPLOAD_TIMEOUT_MS = 10000;

export const info = {
  name: 'fleet',
  title: 'agent fleet: 200 KiB upload / 6 s / agent',
  metrics: [{ key: 'maxOkAgents', label: 'fleet: max agents, 0 err & p99<1s', better: 'higher', digits: 0 }],
};

export async function run(ctx) {
  const steps = ctx.opts.fleetSteps ?? (ctx.quick ? [1000, 3000] : [1000, 3000, 6000, 9500]);
  const stepMs = 1000 * (ctx.opts.fleetStepSec ?? (ctx.quick ? 12 : 40));
  const out = [];
  let maxOk = null;
  for (const agents of steps) {
    const nGen = Math.max(2, Math.ceil(agents / 2500));
    const parts = split(agents, nGen);
    let offset = 0;
    const params = parts.map((k) => {
      const p = { proxy: ctx.target.proxy, port: ctx.ports.fleet, agents: k, offset, total: agents, stepMs };
      offset += k;
      return p;
    });
    let peakRss = 0;
    let sampling = true;
    const r = await ctx.runGens(fileURLToPath(import.meta.url), params, {
      timeoutMs: stepMs + 120000,
      onRunning: async () => {
        if (!ctx.target.pid) return;
        while (sampling) {
          peakRss = Math.max(peakRss, treeRssKiB(ctx.target.pid));
          await sleep(1000);
        }
      },
      onDone: async () => {
        sampling = false;
      },
    });
    const lat = r.results.flatMap((x) => x.lat).sort((a, b) => a - b);
    const latFresh = r.results.flatMap((x) => x.latFresh ?? []).sort((a, b) => a - b);
    const latKept = r.results.flatMap((x) => x.latKept ?? []).sort((a, b) => a - b);
    const errors = r.results.reduce((a, x) => a + x.errors, 0);
    const step = {
      agents,
      generators: nGen,
      uploads: lat.length,
      errors,
      drops: r.results.reduce((a, x) => a + x.drops, 0),
      p50ms: percentile(lat, 50),
      p99ms: percentile(lat, 99),
      // Where the tail comes from: uploads over a kept tunnel vs through a fresh one.
      p99FreshMs: percentile(latFresh, 99),
      p99KeptMs: percentile(latKept, 99),
      maxms: lat.length ? lat[lat.length - 1] : null,
      proxyCpuPct: r.proxyCpuPct,
      proxyRssKiB: peakRss || null,
      genCpuPct: r.genCpuPct,
      genCpuPctPerProcessMax: Math.max(...r.results.map((x) => x.cpuPct)),
      upstreamCpuPct: r.upstreamCpuPct,
      sysCpuPct: r.sysCpuPct,
      firstError: r.results.find((x) => x.firstError)?.firstError,
    };
    step.ok = step.errors === 0 && step.uploads > 0 && step.p99ms < 1000;
    out.push(step);
    ctx.log(
      `  fleet ${ctx.targetName} N=${agents}: uploads=${step.uploads} errors=${errors} p50=${step.p50ms?.toFixed(1)}ms ` +
        `p99=${step.p99ms?.toFixed(1)}ms (kept ${step.p99KeptMs?.toFixed(1)}, fresh ${step.p99FreshMs?.toFixed(1)}) proxyCPU=${step.proxyCpuPct?.toFixed(0)}% RSS=${(peakRss / 1024).toFixed(0)}MiB ` +
        `genCPU=${step.genCpuPct.toFixed(0)}% (max/proc ${step.genCpuPctPerProcessMax.toFixed(0)}%) sys=${step.sysCpuPct?.toFixed(0)}% ${step.ok ? 'OK' : 'FAIL'}` +
        (step.firstError ? ` firstError="${step.firstError}"` : ''),
    );
    if (step.ok) maxOk = agents;
    else if (!ctx.opts.fleetAllSteps) break;
    await sleep(2000);
  }
  const best = out.find((s) => s.agents === maxOk);
  return {
    maxOkAgents: maxOk ?? 0,
    maxOkProxyCpuPct: best?.proxyCpuPct,
    maxOkGenCpuPct: best?.genCpuPct,
    maxOkUpstreamCpuPct: best?.upstreamCpuPct,
    maxOkSysCpuPct: best?.sysCpuPct,
    steps: out,
  };
}

export async function genSetup() {
  const frame = Buffer.allocUnsafe(4 + UPLOAD);
  frame.writeUInt32BE(UPLOAD, 0);
  randomBytes(UPLOAD).copy(frame, 4);
  return { frame };
}

export async function genRun({ frame }, p) {
  const lat = []; // uploads over a kept tunnel
  const latFresh = []; // uploads through a fresh tunnel: connect + CONNECT included
  let errors = 0,
    drops = 0,
    firstError = null;
  const t0 = Date.now();
  const c0 = process.cpuUsage();
  const fail = (err) => {
    errors++;
    firstError ??= String(err?.message ?? err);
  };

  function withTimeout(promise) {
    let t;
    return Promise.race([
      promise,
      new Promise((_, rej) => {
        t = setTimeout(() => rej(new Error('upload timeout')), UPLOAD_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(t));
  }

  async function agent(g) {
    const fresh = g % 10 === 9;
    let next = t0 + Math.floor((g / p.total) * PERIOD_MS);
    let sock = null,
      readN = null,
      dead = true;
    const openPersistent = async () => {
      sock = await openTunnel(p.proxy, p.port, { timeoutMs: UPLOAD_TIMEOUT_MS });
      readN = makeReader(sock);
      dead = false;
      const s = sock;
      s.on('close', () => {
        if (s === sock && !dead) {
          dead = true;
          drops++;
        }
      });
    };
    while (next - t0 < p.stepMs) {
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      next += PERIOD_MS;
      try {
        if (fresh) {
          const start = performance.now();
          const s = await withTimeout(openTunnel(p.proxy, p.port, { timeoutMs: UPLOAD_TIMEOUT_MS }));
          try {
            const rd = makeReader(s);
            s.on('error', () => {});
            s.write(frame);
            await withTimeout(rd(ANSWER));
            latFresh.push(performance.now() - start);
          } finally {
            s.destroy();
          }
        } else {
          if (dead) await openPersistent();
          const start = performance.now();
          sock.write(frame);
          await withTimeout(readN(ANSWER));
          lat.push(performance.now() - start);
        }
      } catch (err) {
        fail(err);
        if (!fresh && sock) {
          dead = true;
          sock.destroy();
        }
      }
    }
    if (sock) {
      dead = true;
      sock.destroy();
    }
  }

  await Promise.all(Array.from({ length: p.agents }, (_, j) => agent(p.offset + j)));
  const c = process.cpuUsage(c0);
  const cpuPct = (100 * (c.user + c.system)) / 1e6 / ((Date.now() - t0) / 1000);
  return { lat: lat.concat(latFresh), latKept: lat, latFresh, errors, drops, firstError, cpuPct };
}

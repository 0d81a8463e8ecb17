#!/usr/bin/env node
// Portcullis benchmark harness.
//
//   node bench/run.mjs [--only case,...] [--targets direct,squid,squid2,tinyproxy,portcullis]
//                      [--quick] [--reps N] [--no-warmup] [--gens N] [--gen native|node] [--upstream native|node]
//                      [--squid-access-log]
//                      [--portcullis-args "..."] [--external name=host:port[:pid]]
//                      [--variant name:workers=2,balance=kernel,relay=js,tls=false,metrics=false] (adds target portcullis-name)
//                      [--fleet-steps 1000,3000,6000,9500] [--fleet-step-sec S] [--fleet-all-steps]
//                      [--idle-tunnels N]
//
// Cases: tunnels, roundtrips, latency, bulk, http, idle-memory, fleet (see
// docs/benchmarks.md). Every (case, target) pair gets a freshly started proxy;
// each case is repeated --reps times (default 3, --quick 1) after one unrecorded
// warm-up rep (not for fleet and idle-memory; --no-warmup drops it), and the median is
// reported. Raw results go to .bench-out/<timestamp>.json.
// --gen native (default): cases tunnels/roundtrips/latency/bulk use the C load
// generator bench/native/loadgen.c; --upstream native (default): echo/sink are
// served by bench/native/upstream.c. Both are compiled with `cc -O2` into
// .bench-out/native/; without a compiler the Node versions are used.

import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { installCleanupHandlers, forkTracked, stopChild, cpuMeter, systemCpuMeter, sleep } from './lib/procs.mjs';
import { runGens } from './lib/gens.mjs';
import { makeTargets, cleanupTempDirs, PEERS } from './lib/targets.mjs';
import { openTunnel, makeReader, median } from './lib/tunnel.mjs';
import { buildNative, runNativeGens, startNativeUpstream } from './lib/native.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(HERE, '..');
const ALL_CASES = ['tunnels', 'roundtrips', 'latency', 'bulk', 'http', 'idle-memory', 'fleet'];
const ALL_TARGETS = ['direct', 'squid', 'squid2', 'tinyproxy', 'portcullis'];

const { values: a } = parseArgs({
  options: {
    only: { type: 'string' },
    targets: { type: 'string' },
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    gens: { type: 'string' }, // default: 1 with --gen native, 2 with --gen node
    gen: { type: 'string', default: 'native' },
    upstream: { type: 'string', default: 'native' },
    'squid-access-log': { type: 'boolean', default: false },
    'portcullis-args': { type: 'string', default: process.env.PORTCULLIS_ARGS ?? '' },
    external: { type: 'string', multiple: true, default: [] },
    variant: { type: 'string', multiple: true, default: [] },
    'fleet-steps': { type: 'string' },
    'fleet-step-sec': { type: 'string' },
    'fleet-reps': { type: 'string', default: '1' },
    'no-warmup': { type: 'boolean', default: false },
    'fleet-all-steps': { type: 'boolean', default: false },
    'idle-tunnels': { type: 'string' },
    'tinyproxy-max-clients': { type: 'string', default: '12000' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (a.help) {
  process.stdout.write(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(1, 20)
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n') + '\n',
  );
  process.exit(0);
}

const quick = a.quick;
const opts = {
  squidAccessLog: a['squid-access-log'],
  portcullisArgs: a['portcullis-args'].split(/\s+/).filter(Boolean),
  external: a.external,
  variants: a.variant,
  tinyproxyMaxClients: Number(a['tinyproxy-max-clients']),
  idleTunnels: a['idle-tunnels'] ? Number(a['idle-tunnels']) : undefined,
  fleetSteps: a['fleet-steps'] ? a['fleet-steps'].split(',').map(Number) : undefined,
  fleetStepSec: a['fleet-step-sec'] ? Number(a['fleet-step-sec']) : undefined,
  fleetAllSteps: a['fleet-all-steps'],
};
const reps = Number(a.reps ?? (quick ? 1 : 3));
// One unrecorded rep per (case, target) before the measured ones: a production gateway is long
// running, so its JIT is warm. Every target gets it alike. Not for fleet (its own ramp-up) nor
// idle-memory (it needs a fresh process).
const warmup = !a['no-warmup'];
const fleetReps = Number(a['fleet-reps']);
const caseNames = a.only ? a.only.split(',').map((s) => s.trim()) : ALL_CASES;
const targetNames = a.targets
  ? a.targets.split(',').map((s) => s.trim())
  : [...ALL_TARGETS, ...opts.external.map((e) => e.split('=')[0]), ...opts.variants.map((v) => `portcullis-${v.split(':')[0]}`)];
for (const c of caseNames) if (!ALL_CASES.includes(c)) throw new Error(`unknown case ${c} (known: ${ALL_CASES.join(', ')})`);

installCleanupHandlers(cleanupTempDirs);
const log = (...x) => process.stderr.write(`[bench] ${x.join(' ')}\n`);

for (const [k, v] of [
  ['gen', a.gen],
  ['upstream', a.upstream],
]) {
  if (!['native', 'node'].includes(v)) throw new Error(`--${k} must be native or node (got ${v})`);
}
let genKind = a.gen,
  upstreamKind = a.upstream;
let native = null;
if (genKind === 'native' || upstreamKind === 'native') {
  native = buildNative();
  if (native.error) {
    log(`native generator/upstream NOT available, falling back to the Node ones: ${native.error}`);
    native = null;
    genKind = 'node';
    upstreamKind = 'node';
  }
}
// One C generator process is cheaper than two on a 2-core box (fewer wake-ups,
// more events per epoll_wait); the Node generators need two to keep up.
const gens = Number(a.gens ?? (genKind === 'native' ? 1 : 2));
log(
  `generators: ${genKind === 'native' ? `native (${native.loadgen}) for tunnels/roundtrips/latency/bulk, Node for the other cases` : 'Node (bench/lib/gen.mjs)'}; ` +
    `echo/sink upstream: ${upstreamKind === 'native' ? `native (${native.upstream})` : 'Node (bench/lib/upstream.mjs)'}`,
);

// ------------------------------------------------------------- upstream servers
async function startNodeUpstream() {
  const child = forkTracked(join(HERE, 'lib/upstream.mjs'));
  const ready = await new Promise((res, rej) => {
    child.once('message', res);
    child.once('exit', (c) => rej(new Error(`upstream exited ${c}`)));
  });
  let seq = 0;
  const pending = new Map();
  child.on('message', (m) => {
    if (m?.type === 'rpc' && pending.has(m.id)) {
      pending.get(m.id)(m.value);
      pending.delete(m.id);
    }
  });
  const rpc = (cmd) =>
    new Promise((res) => {
      const id = ++seq;
      pending.set(id, res);
      child.send({ type: 'rpc', id, cmd });
    });
  return { child, ports: ready.ports, pid: ready.pid, rpc };
}

/**
 * Node upstream (fleet + http, and echo/sink with --upstream node) plus, with
 * --upstream native, the C echo/sink servers. rpc('cpu') sums both processes.
 */
async function startUpstream() {
  const node = await startNodeUpstream();
  if (upstreamKind !== 'native') return { ...node, children: [node.child], pids: [node.pid] };
  const c = await startNativeUpstream(native.upstream);
  return {
    children: [node.child, c.child],
    newEcho: () => c.rpc('newEcho'),
    pids: [node.pid, c.pid],
    ports: { ...node.ports, echo: c.ports.echo, sink: c.ports.sink },
    rpc: async (cmd) => {
      if (cmd === 'sinkBytes') return c.rpc('sinkBytes');
      if (cmd === 'cpu') return (await node.rpc('cpu')) + (await c.rpc('cpu'));
      if (cmd === 'conns') return { ...(await node.rpc('conns')), ...(await c.rpc('conns')) };
      return node.rpc(cmd);
    },
  };
}

/** One CONNECT + echo through the target, to fail fast on a broken config. */
async function probe(handle, ports) {
  const s = await openTunnel(handle.proxy, ports.echo, { timeoutMs: 5000 });
  const readN = makeReader(s);
  s.write('probe');
  await readN(5);
  s.destroy();
}

// ------------------------------------------------------------- main
const startedAt = new Date();
const upstream = await startUpstream();
log(`upstream pid(s) ${upstream.pids.join(', ')} ports ${JSON.stringify(upstream.ports)}`);
const targets = makeTargets(opts);
const results = {}; // results[case][target] = { reps: [...], median: {...}, error?, skipped? }
const cases = {};
for (const c of caseNames) cases[c] = await import(join(HERE, 'cases', `${c}.mjs`));

for (const c of caseNames) {
  const mod = cases[c];
  results[c] = {};
  for (const tn of targetNames) {
    const t = targets[tn];
    if (!t) {
      results[c][tn] = { skipped: `unknown target ${tn}` };
      log(`skip ${tn}: unknown target`);
      continue;
    }
    const skip = t.skipReason?.();
    if (skip) {
      results[c][tn] = { skipped: skip };
      log(`skip ${tn}: ${skip}`);
      continue;
    }
    let handle;
    const entry = { reps: [] };
    results[c][tn] = entry;
    try {
      // tunnels: a fresh echo port per (case, target) when the native upstream runs, so a
      // target is not slowed by the TIME_WAIT sockets the previous target left towards
      // the same echo port (the kernel's ephemeral-port search gets expensive when the
      // range is full of them; TIME_WAIT lasts 60 s).
      const ports = c === 'tunnels' && upstream.newEcho ? { ...upstream.ports, echo: await upstream.newEcho() } : upstream.ports;
      handle = await t.start(ports);
      entry.note = handle.note;
      await probe(handle, ports);
      // Memory per idle tunnel is only honest in a fresh process: a second rep in the same
      // process finds its heap and buffers already grown (Squid showed 0.1 KB/tunnel), so one rep.
      const n = c === 'fleet' ? fleetReps : c === 'idle-memory' ? 1 : reps;
      const first = warmup && c !== 'fleet' && c !== 'idle-memory' ? -1 : 0;
      for (let i = first; i < n; i++) {
        const ctx = {
          target: handle,
          targetName: tn,
          ports,
          upstream,
          quick,
          gens,
          opts,
          log,
          runGens: async (file, params, hooks = {}) => {
            let meter = null;
            let proxyCpuPct = null,
              sysMeter = null,
              sysCpuPct = null,
              up0 = 0,
              upT0 = 0n,
              upstreamCpuPct = null;
            const useNative = genKind === 'native' && typeof mod.nativeArgs === 'function';
            const r = await (useNative ? (p, h) => runNativeGens(native.loadgen, p.map(mod.nativeArgs), h) : (p, h) => runGens(file, p, h))(params, {
              ...hooks,
              onReady: async (pids) => {
                const x = await hooks.onReady?.(pids);
                up0 = await upstream.rpc('cpu');
                upT0 = process.hrtime.bigint();
                meter = cpuMeter(handle.pid);
                sysMeter = systemCpuMeter();
                return x;
              },
              onDone: async () => {
                proxyCpuPct = meter?.stop() ?? null;
                sysCpuPct = sysMeter?.stop() ?? null;
                upstreamCpuPct = (100 * ((await upstream.rpc('cpu')) - up0)) / (Number(process.hrtime.bigint() - upT0) / 1e9);
                return hooks.onDone?.();
              },
            });
            return { ...r, proxyCpuPct, sysCpuPct, upstreamCpuPct, gen: useNative ? 'native' : 'node' };
          },
        };
        const t0 = Date.now();
        const res = await mod.run(ctx);
        if (i < 0) {
          log(`${c} / ${tn} warm-up (not counted): ${summarize(mod, res)}`);
          await sleep(300);
          continue;
        }
        entry.reps.push(res);
        log(`${c} / ${tn} rep ${i + 1}/${n}: ${summarize(mod, res)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        await sleep(300);
      }
    } catch (err) {
      entry.error = String(err?.message ?? err);
      log(`${c} / ${tn} FAILED: ${entry.error}`);
    } finally {
      await handle?.stop().catch(() => {});
    }
    entry.median = medianOf(entry.reps);
  }
  // derived metrics (e.g. added latency = target - direct)
  for (const m of mod.info.metrics.filter((m) => m.derived)) {
    const base = results[c].direct?.median?.[m.derived];
    for (const tn of Object.keys(results[c])) {
      const med = results[c][tn].median;
      if (med && base != null && med[m.derived] != null) med[m.key] = med[m.derived] - base;
    }
  }
}

await Promise.all(upstream.children.map((ch) => stopChild(ch, 1000)));

// ------------------------------------------------------------- report
function medianOf(repsList) {
  const out = {};
  const keys = new Set(repsList.flatMap((r) => Object.keys(r)));
  for (const k of keys) {
    const vals = repsList.map((r) => r[k]);
    if (vals.every((v) => typeof v === 'number' || v == null) && vals.some((v) => typeof v === 'number')) out[k] = median(vals);
  }
  return out;
}

function fmt(v, digits = 0) {
  if (v == null || Number.isNaN(v)) return '-';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function summarize(mod, res) {
  const parts = mod.info.metrics.filter((m) => !m.derived && res[m.key] !== undefined).map((m) => `${m.key}=${fmt(res[m.key], m.digits)}`);
  for (const k of ['errors', 'proxyCpuPct', 'genCpuPct', 'genUserCpuPct', 'upstreamCpuPct', 'sysCpuPct'])
    if (res[k] != null) parts.push(`${k}=${fmt(res[k], 0)}`);
  if (res.firstError) parts.push(`firstError="${res.firstError}"`);
  return parts.join(' ');
}

const shownTargets = targetNames.filter((t) => caseNames.some((c) => results[c][t]));
const rows = [];
for (const c of caseNames) {
  for (const m of cases[c].info.metrics) {
    const cells = shownTargets.map((tn) => {
      const e = results[c][tn];
      if (!e) return '';
      if (e.skipped) return 'skip';
      if (e.error && !e.reps.length) return 'ERR';
      return fmt(e.median?.[m.key], m.digits) + (e.error ? '!' : '');
    });
    const peerVals = PEERS.map((p) => results[c][p]?.median?.[m.key]).filter((v) => typeof v === 'number');
    const mine = results[c].portcullis?.median?.[m.key];
    let ratio = '-';
    if (typeof mine === 'number' && peerVals.length) {
      const best = m.better === 'higher' ? Math.max(...peerVals) : Math.min(...peerVals);
      if (best !== 0) ratio = (mine / best).toFixed(2) + (m.better === 'lower' ? ' (lower=better)' : '');
    }
    rows.push([m.label, ...cells, ratio]);
  }
}
const header = ['case', ...shownTargets, 'portcullis / best peer'];
const cpuRows = [];
for (const c of caseNames) {
  const cells = shownTargets.map((tn) => {
    const md = results[c][tn]?.median;
    if (!md) return '';
    const p = md.proxyCpuPct ?? md.proxyCpuPct16 ?? md.maxOkProxyCpuPct;
    const g = md.genCpuPct ?? md.genCpuPct16 ?? md.maxOkGenCpuPct;
    const gu = md.genUserCpuPct ?? md.genUserCpuPct16;
    const u = md.upstreamCpuPct ?? md.upstreamCpuPct16 ?? md.maxOkUpstreamCpuPct;
    const y = md.sysCpuPct ?? md.sysCpuPct16 ?? md.maxOkSysCpuPct;
    return `${fmt(p)} / ${fmt(g)}${gu != null ? ` (usr ${fmt(gu)})` : ''} / ${fmt(u)} / ${fmt(y)}`;
  });
  cpuRows.push([c, ...cells]);
}

function table(hdr, body) {
  const w = hdr.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (r) => r.map((x, i) => (i === 0 ? String(x).padEnd(w[i]) : String(x).padStart(w[i]))).join('  ');
  return [line(hdr), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}

const cpuModel = os.cpus()[0]?.model ?? 'unknown';
let out =
  `\nPortcullis benchmark — ${startedAt.toISOString()} — ${os.cpus().length} x ${cpuModel}, node ${process.version}` +
  `${quick ? ' — QUICK' : ''}, reps ${reps} (fleet ${fleetReps}), medians\n` +
  `generators: ${genKind} (${gens} process(es)) for tunnels/roundtrips/latency/bulk, node for the rest; echo/sink upstream: ${upstreamKind}\n\n` +
  table(header, rows) +
  `\n\nCPU during the measured window, % of one core (median): proxy / generators (usr = their user-space part) / upstream servers / whole machine (max ${100 * os.cpus().length})\n` +
  table(['case', ...shownTargets], cpuRows) +
  '\n';
if (results.fleet) {
  out += '\nFleet steps (per target; latency = first byte sent -> 1 KiB answer received):\n';
  for (const tn of shownTargets) {
    const e = results.fleet[tn];
    if (!e?.reps?.length) continue;
    const steps = e.reps[e.reps.length - 1].steps ?? [];
    out +=
      `  ${tn}:\n` +
      table(
        ['    agents', 'uploads', 'errors', 'p50 ms', 'p99 ms', 'p99 kept/fresh', 'proxy CPU%', 'proxy RSS MiB', 'gen CPU%', 'ok'],
        steps.map((s) => [
          `    ${s.agents}`,
          fmt(s.uploads),
          fmt(s.errors),
          fmt(s.p50ms, 1),
          fmt(s.p99ms, 1),
          `${fmt(s.p99KeptMs, 1)} / ${fmt(s.p99FreshMs, 1)}`,
          fmt(s.proxyCpuPct),
          fmt(s.proxyRssKiB / 1024, 0),
          fmt(s.genCpuPct),
          s.ok ? 'yes' : 'NO',
        ]),
      ).replace(/^/gm, '  ') +
      '\n';
  }
}
const notes = shownTargets
  .map((tn) => {
    const n = caseNames.map((c) => results[c][tn]?.note ?? results[c][tn]?.skipped).find(Boolean);
    return n ? `  ${tn}: ${n}` : null;
  })
  .filter(Boolean);
out += `\nTargets:\n${notes.join('\n')}\n`;
process.stdout.write(out);

const outDir = join(REPO, '.bench-out');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      startedAt,
      finishedAt: new Date(),
      argv: process.argv.slice(2),
      quick,
      reps,
      fleetReps,
      gens,
      gen: genKind,
      upstream: upstreamKind,
      machine: { cpus: os.cpus().length, cpuModel, totalMemMiB: Math.round(os.totalmem() / 2 ** 20), kernel: os.release(), node: process.version },
      upstreamPorts: upstream.ports,
      results,
    },
    null,
    2,
  ),
);
process.stdout.write(`\nraw results: ${file}\n`);
cleanupTempDirs();
process.exit(0);

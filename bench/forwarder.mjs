#!/usr/bin/env node
// Forwarder benchmark: the whole pipeline, each part in its own process, as in production.
//
//   npm run build && npm run build:emulator && node bench/forwarder.mjs [--seconds 15] [--connections 64,128,256]
//        [--records 20] [--fsync always] [--threads 0] [--bodies 256] [--workers 1] [--cost-rate N]
//        [--gen native|autocannon] [--gzip] [--sdk]
//
// - `portcullis start` (single process: proxy idle, forwarder on a plaintext listener, default
//   fsync 'always', pool one thread per core) forwarding to the Azure Monitor emulator (its own
//   process: HTTPS, Entra tokens, gzip, 1 MiB limits) through the allowlist and dns.overrides.
// - The load generator posts Logs Ingestion uploads of `--records` realistic ~460-byte records
//   (bench/lib/records.mjs), cycling through `--bodies` distinct bodies so gzip sees real data,
//   not one repeated upload. `--gen native` (default): the compiled bench/native/httpload.c, which
//   leaves the 2 cores to what is measured; `--gen autocannon`: autocannon in this process, as
//   before (it costs about a third of a core at these rates). `--gzip`: bodies gzip-compressed by
//   the client (level 6, as the SDK does). `--sdk`: the official client's shape, uploads just under
//   1,000,000 bytes of records (its splitDataToChunks), gzip level 6 (its gZippingPolicy).
// - Phases: warm-up; max rate (`--seconds`) at each of the `--connections` counts (default
//   64,128,256: one count leaves a gateway idle that more clients would keep busy, so the max is
//   the best of them, as a server's capacity is measured at the concurrency that saturates it);
//   half of that rate (the generator's fixed rate), at the best count, for the latency target;
//   then drain until the emulator has every record. Between max phases the spool is drained.
// - The machine's ceiling is measured first, alone: one core doing JSON.parse + gzip level 1 on
//   the same bodies, times the cores (bench/lib/cpu-limit.mjs).
// Everything shares 2 cores: the report gives each process's CPU so the reader can see who paid.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { Agent, fetch as undiciFetch } from 'undici';
import { stringify } from 'yaml';
import { makeRecords } from './lib/records.mjs';
import { measureCpuLimit } from './lib/cpu-limit.mjs';
import { buildHttpLoad, runHttpLoad, writeBodies } from './lib/httpload.mjs';
import { emulatorGatewayConfig, gatewayCommand, logLine } from './lib/gateway.mjs';
import { cpuSeconds, readUntil, rssMB, threadCpu, treePids } from './lib/proc-stat.mjs';

/** CPU seconds of a process's main thread (tid = pid) and of all its other threads. */
function threadCpuSeconds(pid) {
  const t = threadCpu(pid);
  const main = t.main ?? 0;
  return { main, rest: Object.values(t).reduce((a, b) => a + b, 0) - main };
}
import { gzipSync } from 'node:zlib';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '64,128,256' },
    records: { type: 'string', default: '20' },
    fsync: { type: 'string', default: 'always' },
    threads: { type: 'string', default: '0' },
    bodies: { type: 'string', default: '256' },
    workers: { type: 'string', default: '1' },
    'cost-rate': { type: 'string', default: '0' },
    emulator: { type: 'string', default: 'count' },
    'no-sustained': { type: 'boolean', default: false },
    streams: { type: 'string', default: '1' },
    gen: { type: 'string', default: 'native' },
    gzip: { type: 'boolean', default: false },
    sdk: { type: 'boolean', default: false },
  },
});
if (o.sdk) {
  // @azure/monitor-ingestion's splitDataToChunks: a chunk stays under 1,000,000 bytes of records.
  o.records = String(Math.floor(999_000 / 465));
  o.gzip = true;
  if (o.bodies === '256') o.bodies = '16';
}
const seconds = Number(o.seconds);
const connectionCounts = o.connections.split(',').map(Number);
if (connectionCounts.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`--connections: counts like 64 or 64,128,256, not ${o.connections}`);
// --streams N: uploads spread over N destination streams (one DCR), as a gateway serving several
// tables does; each stream is batched and (ordered) sent on its own.
const streamNames = Array.from({ length: Math.max(1, Number(o.streams)) }, (_, i) => (i === 0 ? 'Custom-Bench_CL' : `Custom-Bench${i}_CL`));
const perUpload = Number(o.records);
const log = (...a) => console.error('[bench:forwarder]', ...a);

// ---- the machine's ceiling, measured before anything else runs ---------------------------------
const limit = measureCpuLimit({ recordsPerBody: perUpload, seconds: 3 });
log(
  `ceiling: ${limit.mbPerSecOneCore.toFixed(1)} MB/s on one core x ${limit.cores} = ${limit.mbPerSecMachine.toFixed(1)} MB/s (${Math.round(limit.recordsPerSecMachine)} records/s)`,
);

// ---- processes -----------------------------------------------------------------------------------
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

async function startEmulator() {
  const child = spawn(process.execPath, [join(REPO, 'dist-emulator/test/emulator/main.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // --emulator count (default): the emulator counts each body's records without parsing them
    // (it stands in for Azure, whose CPU is not the gateway's); full: it parses every body.
    env: { ...process.env, EMU_STREAMS: streamNames.join(','), EMU_KEEP_RECORDS: '0', EMU_COUNT_ONLY: o.emulator === 'count' ? '1' : '0' },
  });
  children.push(child);
  const info = await readUntil(child, 'emulator', (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined; // not whole yet
    }
  });
  return { child, info };
}

async function startGateway(config) {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-bench-fwd-gw-'));
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, stringify(config));
  const cmd = gatewayCommand(file);
  const child = spawn(process.execPath, cmd.args, { stdio: ['ignore', 'pipe', 'inherit'], env: cmd.env });
  children.push(child);
  // PCL_BENCH_GATEWAY_OUT=FILE: the gateway's stdout (its log, --trace-gc lines) copied there.
  if (process.env.PCL_BENCH_GATEWAY_OUT) child.stdout.pipe(createWriteStream(process.env.PCL_BENCH_GATEWAY_OUT));
  const port = await readUntil(
    child,
    'gateway',
    logLine('forwarder listening', (rec) => rec.listen.port),
  );
  return { child, port };
}

async function metric(adminPort, name) {
  return metricIn(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(), name);
}

const work = mkdtempSync(join(tmpdir(), 'pcl-bench-fwd-'));
const emu = await startEmulator();
log('emulator up on', emu.info.port);
const { info } = emu;
const apiKey = 'bench-api-key';
const adminPort = 19000 + Math.floor(Math.random() * 1000);
const gwConfig = emulatorGatewayConfig(info, {
  dir: work,
  adminPort,
  workers: Number(o.workers),
  fsync: o.fsync,
  threads: Number(o.threads),
  destination: 'dcr',
});
gwConfig.forwarder.routes = streamNames.map((stream, i) => ({ name: `bench${i}`, from: { dcrId: 'dcr-in', stream }, to: 'dcr' }));
gwConfig.forwarder.identities = [
  { name: 'bench', apiKeySha256: createHash('sha256').update(apiKey).digest('hex'), routes: streamNames.map((_, i) => `bench${i}`) },
];
const gw = await startGateway(gwConfig);
log(`gateway pid ${gw.child.pid} forwarder :${gw.port}, emulator pid ${emu.child.pid} :${info.port}`);
await sleep(2000);
const idleRssMB = Math.round(treePids(gw.child.pid).reduce((s, p) => s + rssMB(p), 0));
log(`gateway RSS at rest, before any upload: ${idleRssMB} MB`);

const jsonBodies = Array.from({ length: Number(o.bodies) }, (_, i) => JSON.stringify(makeRecords(perUpload, i * perUpload, 'bench')));
// MB/s counts the records' JSON bytes (what the ceiling parses and compresses), also with --gzip.
const bodyBytes = jsonBodies.reduce((s, b) => s + Buffer.byteLength(b), 0) / jsonBodies.length;
const bodies = o.gzip ? jsonBodies.map((b) => gzipSync(b)) : jsonBodies;
const wireBytes = bodies.reduce((s, b) => s + Buffer.byteLength(b), 0) / bodies.length;
let next = 0;
let httpload = null;
const pathOf = (stream) => `/dataCollectionRules/dcr-in/streams/${stream}?api-version=2023-01-01`;
const uploadPath = pathOf(streamNames[0]);
// Body i goes to stream i mod N (httpload takes a path per body; autocannon uses the first stream).
const bodyPaths = bodies.map((_, i) => pathOf(streamNames[i % streamNames.length]));
const bodiesFile = join(work, 'bodies');
if (o.gen === 'native') {
  const built = buildHttpLoad();
  if (built.error) log(`native load generator not built (${built.error}): autocannon instead`);
  else {
    httpload = built.bin;
    writeBodies(bodiesFile, bodies, bodyPaths);
  }
}
const uploadHeaders = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', ...(o.gzip ? { 'content-encoding': 'gzip' } : {}) };

/** One load phase with the chosen generator: { ok, non2xx, errors, p50ms, p99ms, genCpuSec }. */
async function load(opts) {
  if (httpload) {
    const r = await runHttpLoad(httpload, {
      port: gw.port,
      path: uploadPath,
      headers: Object.entries(uploadHeaders).map(([k, v]) => `${k}: ${v}`),
      bodiesFile,
      connections: opts.connections,
      seconds: opts.seconds,
      ...(opts.rate ? { rate: opts.rate } : {}),
    });
    if (r.errors > 0) log(`load generator: ${r.errors} errors, first: ${r.firstError}`);
    return { ok: r.ok, non2xx: r.non2xx, errors: r.errors, p50ms: r.latencyUs.p50 / 1000, p99ms: r.latencyUs.p99 / 1000, genCpuSec: r.cpuSec };
  }
  const self0 = process.cpuUsage();
  const r = await autocannon({
    url: `http://127.0.0.1:${gw.port}${uploadPath}`,
    method: 'POST',
    headers: uploadHeaders,
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
    connections: opts.connections,
    duration: opts.seconds,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
  });
  const self = process.cpuUsage(self0);
  return { ok: r['2xx'], non2xx: r.non2xx, errors: r.errors, p50ms: r.latency.p50, p99ms: r.latency.p99, genCpuSec: (self.user + self.system) / 1e6 };
}

/** Every series of `name` in one /metrics text, summed (labels ignored). */
function metricIn(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/**
 * Event-loop lag while a phase runs: prom-client's lag gauges come from a monitorEventLoopDelay
 * histogram that is reset at every scrape, so a scrape once a second gives that second's p99 (in
 * cluster mode the supervisor averages its workers'). A failed scrape is skipped, not counted.
 */
function sampleLag() {
  const p99s = [];
  const maxes = [];
  const scrapes = [];
  let stopped = false;
  const loop = (async () => {
    await metric(adminPort, LAG_P99).catch(() => 0); // reset: the phase starts clean
    while (!stopped) {
      await sleep(1000);
      const t0 = performance.now();
      const text = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
        .then((r) => r.text())
        .catch(() => null);
      if (text === null) continue;
      scrapes.push(performance.now() - t0);
      // The series include the monitor's sampling interval (an idle loop reads 20 ms): the delay
      // beyond it is what the loop lost.
      p99s.push(Math.max(0, metricIn(text, LAG_P99) * 1000 - LAG_SAMPLING_MS));
      maxes.push(Math.max(0, metricIn(text, LAG_MAX) * 1000 - LAG_SAMPLING_MS));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    const sorted = [...p99s].sort((a, b) => a - b);
    return {
      lagP99msMedian: +(sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(1),
      lagP99msWorst: +(sorted[sorted.length - 1] ?? 0).toFixed(1),
      lagMaxms: +Math.max(0, ...maxes).toFixed(1),
      lagSamples: sorted.length,
      // The scrape itself, as Prometheus would see it (the gateway's loop is busy while it answers).
      scrapeMsMedian: +([...scrapes].sort((a, b) => a - b)[Math.floor(scrapes.length / 2)] ?? 0).toFixed(1),
    };
  };
}
const LAG_P99 = 'portcullis_nodejs_eventloop_lag_p99_seconds';
const LAG_MAX = 'portcullis_nodejs_eventloop_lag_max_seconds';
/** eventLoopMonitoringPrecision in src/metrics/runtime-metrics.ts. */
const LAG_SAMPLING_MS = 20;

const emulatorAdmin = new Agent({ connect: { ca: readFileSync(info.caFile, 'utf8') } });
/** The emulator's counts (requests, records, bytes, ...) so far. */
function emulatorStats() {
  return undiciFetch(`https://127.0.0.1:${info.port}/_emulator/stats`, { dispatcher: emulatorAdmin })
    .then((r) => r.json())
    .catch(() => null);
}

async function phase(name, opts) {
  const delivered0 = (await emulatorStats())?.decodedBytes ?? 0;
  const gwPids = treePids(gw.child.pid);
  const cpu0 = { gateway: gwPids.map(cpuSeconds), threads: gwPids.map(threadCpuSeconds), emulator: cpuSeconds(emu.child.pid) };
  let peakRss = 0;
  const sampler = setInterval(
    () =>
      (peakRss = Math.max(
        peakRss,
        gwPids.reduce((s, p) => s + rssMB(p), 0),
      )),
    250,
  );
  const stopLag = sampleLag();
  const t0 = performance.now();
  const r = await load(opts);
  const wall = (performance.now() - t0) / 1000;
  const delivered1 = (await emulatorStats())?.decodedBytes ?? 0;
  clearInterval(sampler);
  const lag = await stopLag();
  const pct = (s) => Math.round((s / wall) * 100);
  const gwCpu = gwPids.reduce((s, p, i) => s + cpuSeconds(p) - (cpu0.gateway[i] ?? 0), 0);
  // The busiest main thread among the gateway's processes: the one that would limit it.
  const mainThreads = gwPids.map((p, i) => pct(threadCpuSeconds(p).main - (cpu0.threads[i]?.main ?? 0)));
  const { ok } = r;
  const out = {
    phase: name,
    connections: opts.connections,
    uploadsPerSec: Math.round(ok / wall),
    recordsPerSec: Math.round((ok * perUpload) / wall),
    mbPerSec: +((ok * bodyBytes) / 1e6 / wall).toFixed(1),
    // What reached the emulator meanwhile (JSON bytes): below mbPerSec, the spool was growing.
    deliveredMbPerSec: +((delivered1 - delivered0) / 1e6 / wall).toFixed(1),
    non2xx: r.non2xx,
    errors: r.errors,
    ackP50ms: +r.p50ms.toFixed(1),
    ackP99ms: +r.p99ms.toFixed(1),
    gatewayCpuPct: pct(gwCpu),
    gatewayMainThreadsCpuPct: mainThreads,
    // Main-thread CPU per accepted upload, all processes' main threads together (µs).
    gatewayMainThreadUsPerUpload:
      ok > 0 ? Math.round((gwPids.reduce((s, p, i) => s + threadCpuSeconds(p).main - (cpu0.threads[i]?.main ?? 0), 0) * 1e6) / ok) : null,
    // CPU paid per MB accepted: steadier than the rate when other work shares the machine.
    gatewayCpuMsPerMB: ok > 0 ? Math.round((gwCpu * 1000) / ((ok * bodyBytes) / 1e6)) : null,
    emulatorCpuPct: pct(cpuSeconds(emu.child.pid) - cpu0.emulator),
    loadgenCpuPct: Math.round((r.genCpuSec / wall) * 100),
    gatewayPeakRssMB: Math.round(peakRss),
    ...lag,
  };
  log(JSON.stringify(out));
  return out;
}

/** Waits until the emulator has every record the gateway accepted; the seconds it took (capped). */
async function drained(capSec) {
  const accepted = await metric(adminPort, 'portcullis_forwarder_records_accepted_total');
  const start = performance.now();
  for (;;) {
    const st = await emulatorStats();
    if (st && st.records >= accepted) return (performance.now() - start) / 1000;
    if (performance.now() - start > capSec * 1000) return Infinity;
    await sleep(100);
  }
}

await phase('warm-up', { seconds: 3, connections: connectionCounts[0] });
// --cost-rate N: instead of max and half, one phase at N uploads/s, for the CPU cost per upload
// (main thread and process), which varies less than the rates when other work shares the machine.
const costRate = Number(o['cost-rate']);
const maxByConnections = [];
if (costRate > 0) maxByConnections.push(await phase('cost', { seconds, rate: costRate, connections: connectionCounts[0] }));
else
  for (const c of connectionCounts) {
    await drained(120);
    maxByConnections.push(await phase(`max, ${c} connections`, { seconds, connections: c }));
  }
const max = maxByConnections.reduce((best, p) => (p.mbPerSec > best.mbPerSec ? p : best));
if (maxByConnections.length > 1)
  log(`max: ${maxByConnections.map((p) => `${p.connections} conn. ${p.mbPerSec} MB/s`).join(', ')}; the best is ${max.connections}`);

// Sustained: the max phase's clients may outrun the upstream side (the spool absorbs it, as it
// would an outage). The sustained rate is the highest fixed rate, stepping down from the max,
// after which every accepted record is at the emulator within 3 s: the pipeline kept up.
let sustained = null;
if (costRate === 0 && !o['no-sustained']) {
  for (const f of [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]) {
    await drained(120);
    const p = await phase(`sustained ${f}`, { seconds, rate: Math.max(1, Math.round(max.uploadsPerSec * f)), connections: max.connections });
    const lagSec = await drained(3);
    log(
      `  at ${f} of the max: accepted records reached the emulator ${Number.isFinite(lagSec) ? `${lagSec.toFixed(1)} s after the phase` : 'more than 3 s after the phase'}`,
    );
    if (Number.isFinite(lagSec) && p.non2xx === 0 && p.errors === 0) {
      sustained = { ...p, fractionOfMax: f, drainAfterSec: +lagSec.toFixed(1) };
      break;
    }
  }
}
await drained(120);
const half = costRate > 0 ? max : await phase('half', { seconds, rate: Math.max(1, Math.round(max.uploadsPerSec / 2)), connections: max.connections });

// Drain: every accepted record reaches the emulator.
const accepted = await metric(adminPort, 'portcullis_forwarder_records_accepted_total');
const drainStart = performance.now();
let stats;
for (;;) {
  stats = await emulatorStats();
  if (stats && stats.records >= accepted) break;
  if (performance.now() - drainStart > 120_000) break;
  await sleep(250);
}
const drainSec = (performance.now() - drainStart) / 1000;
const uncompressed = await metric(adminPort, 'portcullis_forwarder_bytes_uncompressed_total');
const sent = await metric(adminPort, 'portcullis_forwarder_bytes_sent_total');
const result = {
  date: new Date().toISOString(),
  settings: {
    fsync: o.fsync,
    threads: o.threads,
    workers: Number(o.workers),
    connections: connectionCounts,
    recordsPerUpload: perUpload,
    streams: streamNames.length,
    bytesPerRecord: Math.round(bodyBytes / perUpload),
    clientGzip: o.gzip,
    wireBytesPerUpload: Math.round(wireBytes),
    generator: httpload ? 'native (bench/native/httpload.c)' : 'autocannon',
    emulator: o.emulator,
    // Whether the emulator's count mode ran its C helpers (inflate, JSON check) or the JavaScript.
    emulatorNative: info.native,
    seconds,
    tls: false,
  },
  ceiling: {
    mbPerSecOneCore: +limit.mbPerSecOneCore.toFixed(1),
    cores: limit.cores,
    mbPerSecMachine: +limit.mbPerSecMachine.toFixed(1),
    recordsPerSecMachine: Math.round(limit.recordsPerSecMachine),
  },
  max,
  // Every max phase (one per connection count); `max` is the best of them.
  maxByConnections: maxByConnections.map((p) => ({
    connections: p.connections,
    mbPerSec: p.mbPerSec,
    ackP99ms: p.ackP99ms,
    gatewayCpuPct: p.gatewayCpuPct,
    gatewayMainThreadsCpuPct: p.gatewayMainThreadsCpuPct,
  })),
  half,
  shareOfCeiling: +(max.mbPerSec / limit.mbPerSecMachine).toFixed(2),
  gatewayIdleRssMB: idleRssMB,
  sustained,
  sustainedShareOfCeiling: sustained ? +(sustained.mbPerSec / limit.mbPerSecMachine).toFixed(2) : null,
  upstream: {
    recordsAccepted: accepted,
    recordsAtEmulator: stats?.records ?? null,
    requests: stats?.requests ?? null,
    gzipRequests: stats?.gzip ?? null,
    compressionRatio: sent > 0 ? +(uncompressed / sent).toFixed(1) : null,
    drainSec: +drainSec.toFixed(1),
  },
  // Per-second p99 of the gateway's event-loop delay during each phase (see sampleLag).
  gatewayEventLoopLagP99ms: { max: { median: max.lagP99msMedian, worst: max.lagP99msWorst }, half: { median: half.lagP99msMedian, worst: half.lagP99msWorst } },
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(join(REPO, '.bench-out'), { recursive: true });
writeFileSync(join(REPO, '.bench-out', `forwarder-${Date.now()}.json`), JSON.stringify(result, null, 2));
gw.child.kill('SIGTERM');
emu.child.kill('SIGTERM');
await sleep(500);
rmSync(work, { recursive: true, force: true });
process.exit(0);

#!/usr/bin/env node
// Syslog benchmark: CEF over TCP into Portcullis and into rsyslog, the same stream, in the same run.
//
//   npm run build && npm run build:emulator && node bench/syslog.mjs [--seconds 15] [--connections 8]
//        [--messages 0] [--lines 8192] [--targets portcullis,rsyslog] [--fsync always] [--threads 0]
//        [--emulator count|keep] [--streams 1] [--upstream-delay-ms 0] [--unordered] [--max-concurrency N]
//
// --streams N (N > 1): connection i comes from 127.0.0.(10 + i % N) and the gateway routes each
// source address to its own stream (one DCR), as a site whose appliances are split over several
// data collection rules: Azure takes at most 2 GB a minute per rule (~33 MB/s, ~44,000 of these
// records a second), so a collector at 150,000 CEF messages a second feeds at least four.
//
// The sender is bench/native/sysload.c (compiled on demand, like loadgen.c): N TCP connections,
// newline framing, ~400-byte CEF lines of several vendors' shapes (bench/lib/cef-lines.mjs, `--lines`
// distinct lines so gzip sees real data), written as fast as the receiver reads, for `--seconds` or
// `--messages` (whichever comes first). It reports what it sent; each target is then measured on
// what it has done with it:
//
// - portcullis: `portcullis start` (single process) with a syslog TCP listener routed to the Azure
//   Monitor emulator's Custom-CommonSecurityLog stream (its own process: HTTPS, Entra tokens, gzip,
//   1 MiB limits), default fsync 'always'. Received = what the sender wrote (TCP flow control: the
//   gateway reads no faster than it parses and spools); spooled = portcullis_syslog_records_total;
//   forwarded = records at the emulator, waited for after the send (the drain). The rates are over
//   the send, and end to end (first byte sent to last record at the emulator).
// - rsyslog: Debian's rsyslogd in the foreground, its own conf and work dir in a temp dir, imtcp ->
//   omfile (default template); its rate is lines in the file over the time until the last line.
//
// CPU in % of one core over the measured window, per process (the gateway split into its main
// thread and its other threads by name: pool threads, libuv's fsync/file threads, V8's GC), and
// peak RSS. Everything shares the machine's cores: read the ratio more than the absolute numbers.
// PCL_BENCH_NODE_ARGS: extra node flags for the gateway (e.g. --cpu-prof --cpu-prof-dir=DIR).
// PCL_BENCH_GATEWAY_OUT=FILE: the gateway's stdout (its log, and --trace-gc lines) copied there.
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch as undiciFetch } from 'undici';
import { stringify } from 'yaml';
import { cefLines } from './lib/cef-lines.mjs';
import { buildNative, runNativeGens } from './lib/native.mjs';
import { installCleanupHandlers, spawnTracked, stopChild } from './lib/procs.mjs';
import { cpuSeconds, readUntil, rssMB, threadCpu } from './lib/proc-stat.mjs';
import { emulatorGatewayConfig, gatewayCommand, logLine } from './lib/gateway.mjs';

const REPO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    connections: { type: 'string', default: '8' },
    messages: { type: 'string', default: '0' },
    lines: { type: 'string', default: '8192' },
    targets: { type: 'string', default: 'portcullis,rsyslog' },
    fsync: { type: 'string', default: 'always' },
    threads: { type: 'string', default: '0' },
    'warmup-seconds': { type: 'string', default: '3' },
    emulator: { type: 'string', default: 'count' },
    streams: { type: 'string', default: '1' },
    'upstream-delay-ms': { type: 'string', default: '0' },
    unordered: { type: 'boolean', default: false },
    'max-concurrency': { type: 'string', default: '' },
  },
});
const seconds = Number(o.seconds);
const connections = Number(o.connections);
const targets = o.targets.split(',').filter(Boolean);
const streamCount = Math.max(1, Number(o.streams));
const cslStreams = Array.from({ length: streamCount }, (_, k) => (k === 0 ? 'Custom-CommonSecurityLog' : `Custom-CommonSecurityLog${k}`));
const TARGET_MSGS = 150_000;
const log = (...a) => console.error('[bench:syslog]', ...a);
installCleanupHandlers();

const native = buildNative();
if (native.error) {
  log(`cannot build the native sender: ${native.error}`);
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), 'pcl-bench-syslog-'));
const linesFile = join(work, 'cef.lines');
const linesText = cefLines(Number(o.lines));
writeFileSync(linesFile, linesText);
const bytesPerLine = Buffer.byteLength(linesText) / Number(o.lines);
log(`${o.lines} distinct CEF lines, ${bytesPerLine.toFixed(0)} bytes each on average (LF included)`);

/** Samples CPU (per process, per thread group) and peak RSS of `pids` between start and stop(). */
function meter(pids) {
  const t0 = performance.now();
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
  const threads0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, threadCpu(p)]));
  const peak = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
  const sample = () => {
    for (const [k, p] of Object.entries(pids)) peak[k] = Math.max(peak[k], rssMB(p));
  };
  sample();
  const timer = setInterval(sample, 250);
  return () => {
    clearInterval(timer);
    sample();
    const wall = (performance.now() - t0) / 1000;
    const pct = (s) => Math.round((s / wall) * 100);
    const cpuPct = {};
    const threadsPct = {};
    for (const [k, p] of Object.entries(pids)) {
      cpuPct[k] = pct(cpuSeconds(p) - cpu0[k]);
      const now = threadCpu(p);
      const by = {};
      for (const [name, s] of Object.entries(now)) {
        const v = pct(s - (threads0[k][name] ?? 0));
        if (v > 0) by[name] = v;
      }
      threadsPct[k] = by;
    }
    return { wallSec: +wall.toFixed(2), cpuPct, threadsPct, peakRssMB: Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v)])) };
  };
}

/** Runs the native sender once against 127.0.0.1:port; resolves with its result. */
async function send(port, { secs, messages = 0, onReady }) {
  const args = ['--port', port, '--conns', connections, '--seconds', secs, '--lines', linesFile, '--sources', streamCount];
  if (messages > 0) args.push('--messages', messages);
  const r = await runNativeGens(native.sysload, [args], { onReady, timeoutMs: (secs + 120) * 1000 });
  const res = r.results[0];
  if (res.errors > 0) log(`sender: ${res.errors} connection error(s): ${res.firstError}`);
  return { messages: res.messages, bytes: res.bytes, wallSec: r.wallSec, cpuPct: Math.round(r.genCpuPct), userCpuPct: Math.round(r.genUserCpuPct) };
}

/**
 * The measured send of a target: `pids` are metered from the moment the sender is ready. Returns
 * what was sent, the meter over the send (`during`), a second meter still running (`stopAll`, for
 * the time until the target has everything) and when the send started.
 */
async function measuredSend(port, pids) {
  let stopSend;
  let stopAll;
  let tGo = 0;
  const sent = await send(port, {
    secs: seconds,
    messages: Number(o.messages),
    onReady: () => {
      stopSend = meter(pids);
      stopAll = meter(pids);
      tGo = performance.now();
    },
  });
  return { sent, during: stopSend(), stopAll, tGo };
}

async function waitUntil(what, check, timeoutMs) {
  const start = performance.now();
  for (;;) {
    const v = await check();
    if (v !== undefined) return { value: v, sec: (performance.now() - start) / 1000 };
    if (performance.now() - start > timeoutMs) {
      log(`gave up waiting for ${what} after ${timeoutMs / 1000} s`);
      return { value: undefined, sec: (performance.now() - start) / 1000 };
    }
    await sleep(100);
  }
}

// ---- Portcullis ------------------------------------------------------------------------------------
async function runPortcullis() {
  const emuChild = spawnTracked(process.execPath, [join(REPO, 'dist-emulator/test/emulator/main.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // --emulator count (default), as the forwarder bench: the emulator still does TLS, tokens, gzip
    // and the size and rate checks, and counts each body's records with a structural scan instead
    // of parsing and keeping them (it stands in for Azure, whose CPU is not the gateway's; keeping
    // them cost ~12 µs of this machine's CPU per message). --emulator keep: parse and keep them.
    env: {
      ...process.env,
      EMU_STREAMS: [...cslStreams, 'Custom-Bench_CL'].join(','),
      EMU_KEEP_RECORDS: o.emulator === 'keep' ? '1' : '0',
      EMU_COUNT_ONLY: o.emulator === 'count' ? '1' : '0',
    },
  });
  const info = await readUntil(emuChild, 'emulator', (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined; // not whole yet
    }
  });
  const dir = join(work, 'gateway');
  mkdirSync(dir);
  const adminPort = 19000 + Math.floor(Math.random() * 1000);
  // One process: the syslog collector runs in it.
  const config = emulatorGatewayConfig(info, { dir, adminPort, workers: 1, fsync: o.fsync, threads: Number(o.threads), destination: 'sentinel' });
  if (o.unordered) config.forwarder.batch = { ...config.forwarder.batch, ordered: false };
  if (o['max-concurrency'] !== '') config.forwarder.upstream.maxConcurrency = Number(o['max-concurrency']);
  config.forwarder.routes = [{ name: 'bench', from: { dcrId: 'dcr-in', stream: 'Custom-Bench_CL' }, to: 'sentinel' }];
  config.forwarder.identities = [{ name: 'bench', apiKeySha256: createHash('sha256').update('bench-api-key').digest('hex'), routes: ['bench'] }];
  config.syslog = {
    listeners: [{ name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0' }],
    routes:
      streamCount === 1
        ? [{ name: 'cef', match: {}, to: 'sentinel', stream: 'Custom-CommonSecurityLog' }]
        : cslStreams.map((stream, k) => ({ name: `cef${k}`, match: { cidrs: [`127.0.0.${10 + k}/32`] }, to: 'sentinel', stream })),
  };
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, stringify(config));
  const cmd = gatewayCommand(file);
  const gw = spawnTracked(process.execPath, cmd.args, { stdio: ['ignore', 'pipe', 'inherit'], env: cmd.env });
  // PCL_BENCH_GATEWAY_OUT=FILE: the gateway's stdout (its log, --trace-gc lines) copied there.
  if (process.env.PCL_BENCH_GATEWAY_OUT) gw.stdout.pipe(createWriteStream(process.env.PCL_BENCH_GATEWAY_OUT));
  const port = await readUntil(
    gw,
    'gateway',
    logLine('syslog collector listening', (rec) => rec.listeners[0].port),
  );
  log(`gateway pid ${gw.pid} syslog tcp :${port}, emulator pid ${emuChild.pid} :${info.port}`);

  const emuAgent = new Agent({ connect: { ca: readFileSync(info.caFile, 'utf8') } });
  const upstreamDelayMs = Number(o['upstream-delay-ms']);
  if (upstreamDelayMs > 0) {
    // Every Logs Ingestion request waits this long before it is handled: the service's answer
    // time plus the WAN round trip, which an ordered stream pays once per batch.
    const res = await undiciFetch(`https://127.0.0.1:${info.port}/_emulator/faults`, {
      dispatcher: emuAgent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ api: 'logsIngestion', action: { kind: 'delay', ms: upstreamDelayMs }, times: 1e15 }),
    });
    if (res.status !== 201) throw new Error(`the emulator refused the delay fault: ${res.status}`);
    log(`every Logs Ingestion request waits ${upstreamDelayMs} ms at the emulator`);
  }
  const emuRecords = async () =>
    (
      await undiciFetch(`https://127.0.0.1:${info.port}/_emulator/stats`, { dispatcher: emuAgent })
        .then((r) => r.json())
        .catch(() => null)
    )?.records ?? null;
  const metrics = async () => {
    const text = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
    const sum = (name) => {
      let s = 0;
      for (const line of text.split('\n')) if (line.startsWith(name + '{') || line.startsWith(name + ' ')) s += Number(line.slice(line.lastIndexOf(' ') + 1));
      return s;
    };
    return {
      messages: sum('portcullis_syslog_messages_total'),
      records: sum('portcullis_syslog_records_total'),
      parseFailures: sum('portcullis_syslog_parse_failures_total'),
      bytesUncompressed: sum('portcullis_forwarder_bytes_uncompressed_total'),
      bytesSent: sum('portcullis_forwarder_bytes_sent_total'),
    };
  };

  const warm = Number(o['warmup-seconds']);
  if (warm > 0) {
    const w = await send(port, { secs: warm });
    await waitUntil('the warm-up at the emulator', async () => ((await emuRecords()) >= w.messages ? true : undefined), 120_000);
    log(`warm-up: ${w.messages} messages sent and forwarded`);
  }
  const base = { emu: await emuRecords(), m: await metrics() };
  const { sent, during, stopAll, tGo } = await measuredSend(port, { gateway: gw.pid, emulator: emuChild.pid });
  const atSendEnd = { m: await metrics(), emu: await emuRecords() };
  const target = base.emu + sent.messages;
  const drained = await waitUntil('every record at the emulator', async () => ((await emuRecords()) >= target ? true : undefined), 180_000);
  const all = stopAll();
  const endToEndSec = (performance.now() - tGo) / 1000;
  const end = { m: await metrics(), emu: await emuRecords() };
  const forwarded = end.emu - base.emu;
  const out = {
    target: 'portcullis',
    sent,
    received: { messagesPerSec: Math.round(sent.messages / sent.wallSec), mbPerSec: +(sent.bytes / 1e6 / sent.wallSec).toFixed(1) },
    spooledAtSendEnd: atSendEnd.m.records - base.m.records,
    forwardedAtSendEnd: atSendEnd.emu - base.emu,
    forwarded,
    parseFailures: end.m.parseFailures - base.m.parseFailures,
    drainSec: +drained.sec.toFixed(1),
    endToEnd: { sec: +endToEndSec.toFixed(1), messagesPerSec: Math.round(forwarded / endToEndSec), mbPerSec: +(sent.bytes / 1e6 / endToEndSec).toFixed(1) },
    compressionRatio:
      end.m.bytesSent > base.m.bytesSent ? +((end.m.bytesUncompressed - base.m.bytesUncompressed) / (end.m.bytesSent - base.m.bytesSent)).toFixed(1) : null,
    duringSend: { ...during, cpuPct: { ...during.cpuPct, sender: sent.cpuPct } },
    untilDrained: all,
    // CPU paid per message, from the first byte to the last record at the emulator: steadier than
    // the rates when other work shares the machine.
    gatewayCpuUsPerMessage: Math.round(((all.cpuPct.gateway / 100) * all.wallSec * 1e6) / sent.messages),
    // Whether the emulator's count mode ran its C helpers (inflate, JSON check) or the JavaScript.
    emulatorNative: info.native,
  };
  log(JSON.stringify(out));
  await stopChild(gw, 15_000);
  await stopChild(emuChild, 3000);
  return out;
}

// ---- rsyslog ---------------------------------------------------------------------------------------
async function runRsyslog() {
  const bin = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
  if (!bin) {
    log('rsyslogd not found (apt-get install rsyslog): skipped');
    return { target: 'rsyslog', skipped: 'rsyslogd not installed' };
  }
  const dir = join(work, 'rsyslog');
  mkdirSync(dir);
  const portFile = join(dir, 'imtcp.port');
  const outFile = join(dir, 'out.log');
  const conf = join(dir, 'rsyslog.conf');
  // Debian's defaults otherwise (main queue, imtcp workers, omfile buffering): rsyslog as shipped.
  writeFileSync(
    conf,
    [
      `global(workDirectory="${dir}")`,
      'module(load="imtcp" MaxSessions="1000")',
      `input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="${portFile}")`,
      `action(type="omfile" file="${outFile}")`,
      '',
    ].join('\n'),
  );
  const child = spawnTracked(bin, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, LD_PRELOAD: '' },
  });
  const ready = await waitUntil('rsyslog port file', () => (existsSync(portFile) && readFileSync(portFile, 'utf8').trim() !== '' ? true : undefined), 15_000);
  if (!ready.value) throw new Error('rsyslogd did not start');
  const port = Number(readFileSync(portFile, 'utf8').trim());
  // imtcp writes the port file once bound, a moment before it listens.
  await sleep(300);
  log(`rsyslogd pid ${child.pid} imtcp :${port} (${bin}, ${rsyslogVersion(bin)})`);
  const { sent, during, stopAll, tGo } = await measuredSend(port, { rsyslog: child.pid });
  // The file has every line once its size stops growing and the count matches.
  let lastSize = -1;
  let tGrew = performance.now();
  await waitUntil(
    'every line in the file',
    async () => {
      const size = existsSync(outFile) ? statSync(outFile).size : 0;
      if (size !== lastSize) {
        lastSize = size;
        tGrew = performance.now();
        return undefined;
      }
      const n = await countLines(outFile);
      return n >= sent.messages ? n : undefined;
    },
    120_000,
  );
  const all = stopAll();
  const lines = await countLines(outFile);
  // Until the poll that saw the file reach its last size (polls are 100 ms apart).
  const endToEndSec = (tGrew - tGo) / 1000;
  const out = {
    target: 'rsyslog',
    version: rsyslogVersion(bin),
    sent,
    received: { messagesPerSec: Math.round(sent.messages / sent.wallSec), mbPerSec: +(sent.bytes / 1e6 / sent.wallSec).toFixed(1) },
    linesInFile: lines,
    endToEnd: { sec: +endToEndSec.toFixed(1), messagesPerSec: Math.round(lines / endToEndSec), mbPerSec: +(sent.bytes / 1e6 / endToEndSec).toFixed(1) },
    duringSend: { ...during, cpuPct: { ...during.cpuPct, sender: sent.cpuPct } },
    untilWritten: all,
    rsyslogCpuUsPerMessage: Math.round(((all.cpuPct.rsyslog / 100) * all.wallSec * 1e6) / sent.messages),
  };
  log(JSON.stringify(out));
  await stopChild(child, 5000);
  return out;
}

function rsyslogVersion(bin) {
  try {
    const text = execFileSync(bin, ['-v'], { encoding: 'utf8', env: { ...process.env, LD_PRELOAD: '' } });
    return /rsyslogd\s+([\d.]+)/.exec(text)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function countLines(file) {
  return new Promise((resolve, reject) => {
    let n = 0;
    if (!existsSync(file)) return resolve(0);
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on('data', (b) => {
        for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
      })
      .on('end', () => resolve(n))
      .on('error', reject);
  });
}

// ---- the run ---------------------------------------------------------------------------------------
const load0 = loadavg();
const results = {};
for (const t of targets) {
  if (t === 'portcullis') results.portcullis = await runPortcullis();
  else if (t === 'rsyslog') results.rsyslog = await runRsyslog();
  else log(`unknown target ${t}: skipped`);
}
const p = results.portcullis;
const r = results.rsyslog;
const summary = {
  date: new Date().toISOString(),
  machine: {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    loadAverageAtStart: load0.map((x) => +x.toFixed(2)),
    loadAverageAtEnd: loadavg().map((x) => +x.toFixed(2)),
  },
  settings: {
    seconds,
    connections,
    messages: Number(o.messages),
    distinctLines: Number(o.lines),
    bytesPerLine: Math.round(bytesPerLine),
    fsync: o.fsync,
    threads: o.threads,
    emulator: o.emulator,
    streams: streamCount,
    upstreamDelayMs: Number(o['upstream-delay-ms']),
    ordered: !o.unordered,
    maxConcurrency: o['max-concurrency'] === '' ? 'default' : Number(o['max-concurrency']),
  },
  ...results,
};
if (p && !p.skipped) {
  summary.target = {
    messagesPerSec: TARGET_MSGS,
    portcullisEndToEndMessagesPerSec: p.endToEnd.messagesPerSec,
    shareOfTarget: +(p.endToEnd.messagesPerSec / TARGET_MSGS).toFixed(2),
  };
}
if (p && r && !p.skipped && !r.skipped) {
  // Both end to end: Portcullis received, parsed, spooled and forwarded; rsyslog received and wrote.
  summary.ratio = {
    portcullisOverRsyslog: +(p.endToEnd.messagesPerSec / r.endToEnd.messagesPerSec).toFixed(2),
    target: 0.5,
    cpuPerMessagePortcullisOverRsyslog: +(p.gatewayCpuUsPerMessage / r.rsyslogCpuUsPerMessage).toFixed(1),
  };
}
console.log(JSON.stringify(summary, null, 2));
mkdirSync(join(REPO, '.bench-out'), { recursive: true });
writeFileSync(join(REPO, '.bench-out', `syslog-${Date.now()}.json`), JSON.stringify(summary, null, 2));
rmSync(work, { recursive: true, force: true });
process.exit(0);

#!/usr/bin/env node
// Forwarder ingest benchmark (first cut, for the lead's full benchmark in docs/benchmarks.md):
// autocannon posts Logs Ingestion uploads of ~500-byte agent-like records to an in-process
// ForwarderService (plaintext listener, real spool with the given fsync mode, real pool); the
// upstream is left unreachable (no allow rule) so only ingest is measured. Reports records/s,
// MB/s, p50/p99 time to acknowledge, event-loop delay p99/max, RSS, and the machine's reference
// (single-core JSON.parse + gzip level 1 on the same records).
//
//   npm run build && node bench/forwarder-ingest.mjs [--seconds 10] [--connections 50] [--records 20] [--fsync always] [--threads 0]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { createHash, randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { stringify } from 'yaml';
import { parseConfig } from '../dist/config/index.js';
import { createLogger } from '../dist/log/logger.js';
import { createForwarderService } from '../dist/forwarder/index.js';

const { values: o } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    records: { type: 'string', default: '20' },
    fsync: { type: 'string', default: 'always' },
    threads: { type: 'string', default: '0' },
  },
});

function agentRecord(i) {
  return {
    TimeGenerated: new Date().toISOString(),
    Computer: `web-${String(i % 500).padStart(4, '0')}.contoso.local`,
    EventID: 4624 + (i % 7),
    Level: 'Information',
    Source: 'Microsoft-Windows-Security-Auditing',
    Id: randomUUID(),
    Message: `An account was successfully logged on. Subject: S-1-5-18 Logon Type: 3 Workstation: WS${i % 97} Process: lsass.exe ${'-'.repeat(120)}`,
  };
}

const records = Array.from({ length: Number(o.records) }, (_, i) => agentRecord(i));
const body = JSON.stringify(records);
const key = 'bench-key';
const dir = mkdtempSync(join(tmpdir(), 'pcl-fwd-bench-'));
const config = parseConfig(
  stringify({
    allow: { presets: [], rules: [] },
    log: { level: 'error' },
    forwarder: {
      listen: '127.0.0.1:0',
      plaintext: true,
      spool: { dir: join(dir, 'spool'), fsync: o.fsync, maxBytes: 8 * 1024 * 1024 * 1024 },
      pool: { threads: Number(o.threads) },
      upstream: { retry: { baseMs: 1000, maxMs: 30000 } },
      credentials: [{ name: 'c', type: 'managedIdentity' }],
      destinations: [{ name: 'd', type: 'logsIngestion', endpoint: 'https://bench.invalid', dcrId: 'dcr-bench', credential: 'c' }],
      routes: [{ name: 'r', from: { dcrId: 'dcr-in', stream: 'Custom-Bench_CL' }, to: 'd' }],
      identities: [{ name: 'i', apiKeySha256: createHash('sha256').update(key).digest('hex'), routes: ['r'] }],
    },
  }),
  { env: {} },
);
const { logger } = createLogger({ level: 'error' }, { dest: 2 });
const service = createForwarderService(config, logger, null, { env: {}, tokenSource: () => ({ getToken: async () => 'unused' }) });
await service.start();
const { port } = service.address;

// Reference: single-core JSON.parse + gzip level 1 on the same uploads.
const refStart = performance.now();
let refBytes = 0;
while (performance.now() - refStart < 2000) {
  JSON.parse(body);
  gzipSync(body, { level: 1 });
  refBytes += body.length;
}
const refMBs = refBytes / 1e6 / ((performance.now() - refStart) / 1000);

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
const cpu0 = process.cpuUsage();
let maxRss = 0;
const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, process.memoryUsage.rss())), 200);
const result = await autocannon({
  url: `http://127.0.0.1:${port}/dataCollectionRules/dcr-in/streams/Custom-Bench_CL?api-version=2023-01-01`,
  method: 'POST',
  headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
  body,
  connections: Number(o.connections),
  duration: Number(o.seconds),
});
clearInterval(rssTimer);
eld.disable();
const cpu = process.cpuUsage(cpu0);
const ok = result['2xx'];
const secs = Number(o.seconds);
const out = {
  fsync: o.fsync,
  threads: o.threads === '0' ? availableParallelism() : Number(o.threads),
  recordBytes: Math.round(body.length / records.length),
  uploads: ok,
  non2xx: result.non2xx,
  recordsPerSec: Math.round((ok * records.length) / secs),
  mbPerSec: +((ok * body.length) / 1e6 / secs).toFixed(1),
  ackP50ms: result.latency.p50,
  ackP99ms: result.latency.p99,
  eventLoopDelayP99ms: +(eld.percentile(99) / 1e6).toFixed(1),
  eventLoopDelayMaxMs: +(eld.max / 1e6).toFixed(1),
  mainThreadCpuPct: Math.round(((cpu.user + cpu.system) / 1e6 / secs) * 100),
  maxRssMB: Math.round(maxRss / 1e6),
  referenceSingleCoreMBs: +refMBs.toFixed(1),
  referenceAllCoresMBs: +(refMBs * availableParallelism()).toFixed(1),
};
console.log(JSON.stringify(out, null, 2));
await service.drain(1000);
rmSync(dir, { recursive: true, force: true });

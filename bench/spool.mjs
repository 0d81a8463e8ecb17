#!/usr/bin/env node
// Spool append throughput (measured, not asserted): N concurrent appenders of ~S-byte entries per
// fsync mode, bounded by time and count. Needs `npm run build` (imports dist/).
//
//   node bench/spool.mjs [--dir DIR] [--concurrency 64] [--size 8192] [--seconds 3] [--modes always,interval,never]
//
// Reports MB/s and appends/s, fsyncs/s (group commit: appends per fsync), and the CRC-32 speed.
// The spool directory defaults to a fresh one under os.tmpdir(): pass --dir to measure the disk
// the spool will really live on (what fdatasync costs depends entirely on it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';
import pino from 'pino';
import { Spool } from '../dist/forwarder/spool/index.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    size: { type: 'string', default: '8192' },
    seconds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'always,interval,never' },
  },
});
const concurrency = Number(values.concurrency);
const size = Number(values.size);
const seconds = Number(values.seconds);
const MAX_APPENDS = 2_000_000;

function crcSpeed() {
  const buf = Buffer.alloc(64 * 1024 * 1024, 7);
  const t0 = process.hrtime.bigint();
  let c = 0;
  for (let i = 0; i < 4; i++) c = crc32(buf, c);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (4 * buf.length) / s / 1e6;
}

async function run(mode) {
  const base = values.dir ?? mkdtempSync(join(tmpdir(), 'pcl-bench-spool-'));
  const dir = join(base, `spool-${mode}-${process.pid}`);
  const spool = await Spool.open({ dir, maxBytes: 64 * 1024 ** 3, segmentBytes: 64 * 1024 * 1024, fsync: mode, logger: pino({ level: 'warn' }) });
  const payload = Buffer.alloc(size, 120);
  let appends = 0;
  let stop = false;
  const lat = [];
  const deadline = Date.now() + seconds * 1000;
  const before = spool.stats().fsyncs;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, k) => {
      while (!stop) {
        const t = process.hrtime.bigint();
        const [e] = await spool.append([{ stream: `s${k % 4}`, records: 16, payload }]);
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        appends++;
        // Keep the disk footprint bounded: ack what was written (acks are group-committed too).
        if (appends % 64 === 0) await spool.ack([e.id]);
        if (Date.now() >= deadline || appends >= MAX_APPENDS) stop = true;
      }
    }),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const fsyncs = spool.stats().fsyncs - before;
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
  if (values.dir === undefined) rmSync(base, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]?.toFixed(2);
  return {
    mode,
    appendsPerSec: Math.round(appends / s),
    MBps: +((appends * size) / s / 1e6).toFixed(1),
    fsyncsPerSec: Math.round(fsyncs / s),
    appendsPerFsync: fsyncs > 0 ? +(appends / fsyncs).toFixed(1) : null,
    p50ms: pct(0.5),
    p99ms: pct(0.99),
  };
}

console.log(`spool bench: ${concurrency} concurrent appenders, ${size}-byte entries, ${seconds}s per mode, node ${process.version}`);
console.log(`crc32 (zlib, native): ${crcSpeed().toFixed(0)} MB/s`);
const rows = [];
for (const mode of values.modes.split(',')) rows.push(await run(mode));
console.table(rows);

// The machine's ceiling for the forwarder's per-byte work, measured the way issue 9 asks: one core
// doing JSON.parse plus gzip level 1 on the same records the bench uploads, times the cores. The
// forwarder does more than this per byte (HTTP, validation, spool writes, fsync, upstream sends),
// so a fraction of it is the honest target.
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import { makeRecords } from './records.mjs';

/**
 * @param {{ recordsPerBody?: number, seconds?: number }} [opts]
 * @returns {{ mbPerSecOneCore: number, recordsPerSecOneCore: number, cores: number, mbPerSecMachine: number, recordsPerSecMachine: number, bytesPerRecord: number }}
 */
export function measureCpuLimit(opts = {}) {
  const recordsPerBody = opts.recordsPerBody ?? 100;
  const seconds = opts.seconds ?? 3;
  const bodies = Array.from({ length: 16 }, (_, i) => JSON.stringify(makeRecords(recordsPerBody, i * recordsPerBody, 'limit')));
  const bytesPerBody = bodies.reduce((s, b) => s + Buffer.byteLength(b), 0) / bodies.length;
  // Warm up the JIT and zlib.
  for (let i = 0; i < 50; i++) {
    JSON.parse(bodies[i % bodies.length]);
    gzipSync(bodies[i % bodies.length], { level: 1 });
  }
  let bytes = 0;
  let records = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let i = 0;
  while (process.hrtime.bigint() < end) {
    const body = bodies[i++ % bodies.length];
    const parsed = JSON.parse(body);
    gzipSync(body, { level: 1 });
    bytes += Buffer.byteLength(body);
    records += parsed.length;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cores = os.availableParallelism();
  const mbPerSecOneCore = bytes / elapsed / 1e6;
  const recordsPerSecOneCore = records / elapsed;
  return {
    mbPerSecOneCore,
    recordsPerSecOneCore,
    cores,
    mbPerSecMachine: mbPerSecOneCore * cores,
    recordsPerSecMachine: recordsPerSecOneCore * cores,
    bytesPerRecord: bytesPerBody / recordsPerBody,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(measureCpuLimit());

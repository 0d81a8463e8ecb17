import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { deflateRun, ForwarderPool } from '../../../src/forwarder/pool/index.js';

/** A batch body the pool compresses for real: ~1 MiB of distinct JSON records. */
function body(seed: number): Uint8Array {
  const rows = Array.from({ length: 6_000 }, (_, i) => ({ id: `${seed}-${i}`, host: `srv-${(seed * 31 + i) % 97}`, message: `event ${i * seed} ok` }));
  return new TextEncoder().encode(JSON.stringify(rows));
}

/** One build thread: what waits, and for how long it is busy, is then exact. */
let pool: ForwarderPool;
beforeEach(() => {
  pool = new ForwarderPool({ threads: 1 });
});
afterEach(async () => {
  await pool.close();
});

it('counts builds waiting for a thread, including those queued inside a busy thread (portcullis_forwarder_pool_queued_tasks)', async () => {
  const bodies = Array.from({ length: 6 }, (_, i) => body(i + 1));
  const copies = bodies.map((b) => Buffer.from(b));
  const runs = bodies.map((b) => pool.build({ kind: 'build', body: b, level: 9 }));
  // Nothing can settle before this line runs: one thread, six tasks, so five wait. piscina's own
  // queue holds only two of them here (four are queued in the thread), which the metric missed.
  expect(pool.queued).toBe(5);
  const built = await Promise.all(runs);
  built.forEach((r, i) => expect(Buffer.from(gunzipSync(r.gz)).equals(copies[i]!)).toBe(true));
  expect(pool.queued).toBe(0);
});

it('a failed task leaves the count too', async () => {
  const bad = pool.runFile('/nonexistent/portcullis-worker.js', {});
  const good = pool.build({ kind: 'build', body: body(7), level: 1 });
  expect(pool.queued).toBe(1);
  await expect(bad).rejects.toThrow();
  await good;
  expect(pool.queued).toBe(0);
});

it('utilization stays a share (0..1) when each thread holds several tasks (portcullis_forwarder_pool_utilization)', async () => {
  await pool.build({ kind: 'build', body: body(0), level: 1 });
  // Twelve builds on one thread, four queued in it at a time: piscina times each from its
  // dispatch, so their times overlap and its utilization read about 3 here.
  await Promise.all(Array.from({ length: 12 }, (_, i) => pool.build({ kind: 'build', body: body(i + 1), level: 9 })));
  // The build thread was busy most of the time since the pool started; the decode lane's thread idle.
  const u = pool.utilization;
  expect(u).toBeGreaterThan(0.1);
  expect(u).toBeLessThanOrEqual(1);
});

it('builds a batch from payloads in files: joined in order across files, gzip only unless it does not fit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-build-'));
  try {
    // Two "segments" with frame bytes around the payloads, as in the spool.
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    writeFileSync(a, Buffer.from('HDR{"n":1}HDR{"n":2}TAIL'));
    writeFileSync(b, Buffer.from('xx{"n":3}'));
    const parts = [
      { path: a, offset: 3, length: 7 },
      { path: a, offset: 13, length: 7 },
      { path: b, offset: 2, length: 7 },
    ];
    const built = await pool.buildFromSpool({ kind: 'build-spool', parts, level: 1, maxGzipBytes: 1024 * 1024 });
    expect(gunzipSync(built.gz ?? new Uint8Array(0)).toString()).toBe('[{"n":1},{"n":2},{"n":3}]');
    expect(built.raw).toBeNull();
    expect(built.rawBytes).toBe(25);

    // Incompressible: its gzip is larger than the limit, so the JSON comes back to be sent as is
    // (and no gzip: libdeflate stops once the output cannot fit).
    const noise = `"${randomBytes(3000).toString('base64')}"`;
    writeFileSync(a, noise);
    const big = await pool.buildFromSpool({ kind: 'build-spool', parts: [{ path: a, offset: 0, length: noise.length }], level: 1, maxGzipBytes: 1000 });
    expect(Buffer.from(big.raw ?? []).toString()).toBe(`[${noise}]`);
    expect(big.gz).toBeNull();

    // A file shorter than the entry says (damage, or a bug): the build fails, nothing is sent.
    await expect(
      pool.buildFromSpool({ kind: 'build-spool', parts: [{ path: b, offset: 2, length: 50 }], level: 1, maxGzipBytes: 1024 * 1024 }),
    ).rejects.toThrow(/short read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('a batch with deflate runs among its parts is stitched: plain parts are deflated there, incompressible ones go as JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-build-runs-'));
  try {
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    // Segment a: a run of two records at 3, a plain record after it; segment b: another run.
    const runA = Buffer.from(deflateRun(Buffer.from('{"n":1},{"n":2}'), 1));
    const plain = Buffer.from('{"n":3}');
    const runB = Buffer.from(deflateRun(Buffer.from('{"n":4}'), 6));
    writeFileSync(a, Buffer.concat([Buffer.from('xyz'), runA, plain]));
    writeFileSync(b, Buffer.concat([Buffer.from('q'), runB]));
    const parts = [
      { path: a, offset: 3, length: runA.length, deflated: true },
      { path: a, offset: 3 + runA.length, length: plain.length },
      { path: b, offset: 1, length: runB.length, deflated: true },
    ];
    const built = await pool.buildFromSpool({ kind: 'build-spool', parts, level: 1, maxGzipBytes: 1024 * 1024 });
    expect(gunzipSync(built.gz ?? new Uint8Array(0)).toString()).toBe('[{"n":1},{"n":2},{"n":3},{"n":4}]');
    expect(built.raw).toBeNull();
    expect(built.rawBytes).toBe(33);

    // Incompressible records whose gzip is over the limit: the JSON comes back, to go uncompressed.
    const noise = `"${randomBytes(3000).toString('base64')}"`;
    const runN = Buffer.from(deflateRun(Buffer.from(noise), 1));
    writeFileSync(a, runN);
    const big = await pool.buildFromSpool({
      kind: 'build-spool',
      parts: [{ path: a, offset: 0, length: runN.length, deflated: true }],
      level: 1,
      maxGzipBytes: 1000,
    });
    expect(Buffer.from(big.raw ?? []).toString()).toBe(`[${noise}]`);
    expect(big.gz).toBeNull();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

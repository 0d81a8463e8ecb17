import { crc32, gunzipSync, inflateRawSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { deflateRun, nativeDeflate, RUN_PREFIX_BYTES } from '../../../src/forwarder/pool/gzip.js';
import { crc32Combine, inflateRun, stitchGzip } from '../../../src/forwarder/pool/stitch.js';

/**
 * Syslog entries are spooled as deflate runs and a batch's gzip is stitched from them without
 * compressing again. Whatever the split, the levels and the path that made each run (libdeflate
 * patched to end in a sync flush, or zlib's Z_SYNC_FLUSH), the result must be one standard gzip
 * member of exactly "[" + parts.join(",") + "]", with its CRC-32 and length right. CI runs this
 * file again under ASan/UBSan (test/sanitize.sh).
 */
const parts = fc.oneof(
  fc
    .array(fc.record({ TimeGenerated: fc.date({ noInvalidDate: true }), Computer: fc.string(), n: fc.integer() }), { maxLength: 300 })
    .map((rows) => new TextEncoder().encode(JSON.stringify(rows).slice(1, -1))),
  fc.uint8Array({ maxLength: 5_000 }),
  // Over one stored block (65,535 bytes) and over libdeflate's passthrough size, both ways.
  fc.constantFrom(
    new Uint8Array(0),
    new Uint8Array(1).fill(0x7b),
    new Uint8Array(51).fill(0x61),
    new Uint8Array(200_000).fill(0x61),
    new Uint8Array(randomBytes(70_000)),
  ),
);

const paths = nativeDeflate ? [true, false] : [false];

function joined(ps: readonly Uint8Array[]): Buffer {
  const bufs: Buffer[] = [Buffer.from('[')];
  ps.forEach((p, i) => {
    if (i > 0) bufs.push(Buffer.from(','));
    bufs.push(Buffer.from(p));
  });
  bufs.push(Buffer.from(']'));
  return Buffer.concat(bufs);
}

it('crc32Combine gives the CRC-32 of the concatenation', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3_000 }), fc.uint8Array({ maxLength: 3_000 }), (a, b) => {
      expect(crc32Combine(crc32(a), crc32(b), b.byteLength)).toBe(crc32(Buffer.concat([a, b])));
    }),
  );
});

it('stitched runs are one gzip member of exactly the joined JSON, whoever made each run and at which level', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(parts, fc.constantFrom(...paths), fc.constantFrom(1, 2, 6, 9)), { maxLength: 8 }), (spec) => {
      const want = joined(spec.map(([p]) => p));
      const { gz, rawBytes } = stitchGzip(spec.map(([p, native, level]) => deflateRun(p, level, native)));
      expect(rawBytes).toBe(want.length);
      const g = Buffer.from(gz.buffer, gz.byteOffset, gz.byteLength);
      // One member: a 10-byte header, one DEFLATE stream, then this body's CRC-32 and length.
      expect([...g.subarray(0, 3)]).toEqual([0x1f, 0x8b, 8]);
      expect(inflateRawSync(g.subarray(10, g.length - 8)).equals(want)).toBe(true);
      expect(g.readUInt32LE(g.length - 8)).toBe(crc32(want));
      expect(g.readUInt32LE(g.length - 4)).toBe(want.length);
      expect(gunzipSync(g).equals(want)).toBe(true);
      // In a buffer of its own: movable from the pool thread to the main thread.
      expect(gz.byteOffset).toBe(0);
      expect(gz.byteLength).toBe(gz.buffer.byteLength);
    }),
    { numRuns: 150 },
  );
});

for (const native of paths) {
  it(`${native ? 'native' : 'zlib'} deflateRun: prefix (CRC-32, length), then data that inflates back; empty input is the prefix alone`, () => {
    fc.assert(
      fc.property(parts, fc.constantFrom(1, 6, 9), (p, level) => {
        const run = Buffer.from(deflateRun(p, level, native));
        expect(run.readUInt32LE(0)).toBe(p.byteLength > 0 ? crc32(p) : 0);
        expect(run.readUInt32LE(4)).toBe(p.byteLength);
        expect(inflateRun(run).equals(Buffer.from(p))).toBe(true);
        if (p.byteLength === 0) expect(run.byteLength).toBe(RUN_PREFIX_BYTES);
      }),
    );
  });
}

it('the native deflateRun refuses bad arguments with TypeErrors', () => {
  if (!nativeDeflate) return;
  const addon = nativeDeflate;
  expect(() => addon.deflateRun('text' as unknown as Uint8Array, 1)).toThrow(TypeError);
  expect(() => addon.deflateRun(new Uint8Array(4), 0)).toThrow(TypeError);
  expect(() => addon.deflateRun(new Uint8Array(4), 13)).toThrow(TypeError);
  // Level 12 (libdeflate's slowest) is the addon's own; it stitches like the others.
  const p = new TextEncoder().encode('{"a":1},{"a":2}');
  expect(gunzipSync(stitchGzip([addon.deflateRun(p, 12)]).gz).toString()).toBe('[{"a":1},{"a":2}]');
});

it('a run shorter than its prefix is refused, not stitched', () => {
  expect(() => stitchGzip([new Uint8Array(4)])).toThrow(RangeError);
  expect(() => inflateRun(new Uint8Array(7))).toThrow(RangeError);
});

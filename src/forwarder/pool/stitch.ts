/**
 * Deflate runs (gzip.ts deflateRun) stitched into the gzip of "[" + parts.join(",") + "]" without
 * compressing anything again: the brackets and commas go in as 1-byte stored blocks between the
 * runs, a final stored block closes the stream, and the CRC-32 of the whole is combined from the
 * runs' own (zlib's crc32_combine). pigz assembles its output the same way. Costs a copy of the
 * compressed bytes, not a pass over the JSON.
 */
import { crc32, inflateRawSync, constants } from 'node:zlib';
import { RUN_PREFIX_BYTES } from './gzip.js';

/** gzip member header: deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952). */
const GZIP_HEADER = Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff);
const OPEN = 0x5b; // [
const COMMA = 0x2c;
const CLOSE = 0x5d; // ]
/** A stored block of one byte: header byte (BFINAL, BTYPE 00, padding), LEN 1, NLEN ~1, the byte. */
const STORED_ONE = 6;

const CRC_POLY = 0xedb88320;

/** a(x) * b(x) modulo the CRC-32 polynomial, reflected (zlib's multmodp). */
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ CRC_POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, for k = 0..31. */
const X2N: number[] = (() => {
  const t: number[] = [];
  let p = 1 << 30; // x^1
  t.push(p);
  for (let n = 1; n < 32; n++) t.push((p = multmodp(p, p)));
  return t;
})();

/** x^(n * 2^k) modulo the polynomial (zlib's x2nmodp). */
function x2nmodp(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multmodp(X2N[k & 31] as number, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** The CRC-32 of A followed by B, from the CRC-32 of A, the CRC-32 of B and B's length. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multmodp(x2nmodp(lengthB, 3), crcA) ^ crcB) >>> 0;
}

const CRC_OPEN = crc32(Uint8Array.of(OPEN));
const CRC_COMMA = crc32(Uint8Array.of(COMMA));
const CRC_CLOSE = crc32(Uint8Array.of(CLOSE));

function putStored(out: Uint8Array, at: number, byte: number, final: boolean): number {
  out[at] = final ? 1 : 0;
  out[at + 1] = 1;
  out[at + 2] = 0;
  out[at + 3] = 0xfe;
  out[at + 4] = 0xff;
  out[at + 5] = byte;
  return at + STORED_ONE;
}

function view(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The gzip of "[" + the runs' inputs joined by "," + "]", in a buffer of its own, and that
 * body's length. Each run is a deflateRun output (prefix included).
 */
export function stitchGzip(runs: readonly Uint8Array[]): { gz: Uint8Array; rawBytes: number } {
  // Stored blocks: "[", "]", and a "," between runs; then the CRC-32 and ISIZE.
  let size = GZIP_HEADER.length + STORED_ONE * (2 + Math.max(0, runs.length - 1)) + 8;
  let rawBytes = 2 + Math.max(0, runs.length - 1);
  let crc = CRC_OPEN;
  runs.forEach((r, i) => {
    if (r.byteLength < RUN_PREFIX_BYTES) throw new RangeError('stitchGzip: a run is shorter than its prefix');
    const v = view(r);
    const length = v.readUInt32LE(4);
    size += r.byteLength - RUN_PREFIX_BYTES;
    rawBytes += length;
    if (i > 0) crc = crc32Combine(crc, CRC_COMMA, 1);
    crc = crc32Combine(crc, v.readUInt32LE(0), length);
  });
  crc = crc32Combine(crc, CRC_CLOSE, 1);
  const out = Buffer.allocUnsafeSlow(size);
  out.set(GZIP_HEADER, 0);
  let at = putStored(out, GZIP_HEADER.length, OPEN, false);
  runs.forEach((r, i) => {
    if (i > 0) at = putStored(out, at, COMMA, false);
    out.set(r.subarray(RUN_PREFIX_BYTES), at);
    at += r.byteLength - RUN_PREFIX_BYTES;
  });
  at = putStored(out, at, CLOSE, true);
  out.writeUInt32LE(crc, at);
  out.writeUInt32LE(rawBytes % 0x100000000, at + 4);
  if (at + 8 !== size) throw new Error(`stitchGzip: laid out ${at + 8} bytes of ${size}`);
  return { gz: out, rawBytes };
}

/** The JSON a run stands for (where a batch must go uncompressed: Data Collector, dead letters). */
export function inflateRun(run: Uint8Array): Buffer {
  if (run.byteLength < RUN_PREFIX_BYTES) throw new RangeError('inflateRun: a run is shorter than its prefix');
  const data = run.subarray(RUN_PREFIX_BYTES);
  return data.byteLength === 0 ? Buffer.alloc(0) : inflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
}

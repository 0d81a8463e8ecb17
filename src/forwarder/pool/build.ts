/**
 * Spool entries -> upstream request bodies. grouping (plain arithmetic on entry sizes) runs on
 * the main thread; gzip runs in a pool thread (worker.ts).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { deflateRun, gzipBody, gzipWithin } from './gzip.js';
import { stitchGzip } from './stitch.js';

export interface BuildTask {
  readonly kind: 'build';
  /** "[" + payloads.join(",") + "]". */
  readonly body: Uint8Array;
  readonly level: number;
}

export interface BuildResult {
  readonly gz: Uint8Array;
  /** task.body, handed back (moved both ways, never copied): dead letters and the no-gzip fallback need it. */
  readonly raw: Uint8Array;
}

export function build(task: BuildTask): BuildResult {
  return { gz: gzipBody(task.body, task.level), raw: task.body };
}

/**
 * Groups consecutive entries so that each body "[" + join(",") + "]" stays within maxBodyBytes.
 * Every entry fits on its own (ingest refuses records larger than a batch), so no group is empty.
 */
export function groupEntries(sizes: readonly number[], maxBodyBytes: number): Array<[start: number, end: number]> {
  const groups: Array<[number, number]> = [];
  let start = 0;
  let bytes = 2;
  for (let i = 0; i < sizes.length; i++) {
    const add = (i > start ? 1 : 0) + (sizes[i] ?? 0);
    if (i > start && bytes + add > maxBodyBytes) {
      groups.push([start, i]);
      start = i;
      bytes = 2 + (sizes[i] ?? 0);
    } else bytes += add;
  }
  if (sizes.length > start) groups.push([start, sizes.length]);
  return groups;
}

const OPEN = 0x5b; // [
const COMMA = 0x2c;
const CLOSE = 0x5d; // ]

/** Bytes of "[" + parts.join(",") + "]" for parts of these lengths. */
function joinedBytes(lengths: readonly number[]): number {
  let total = 2 + Math.max(0, lengths.length - 1);
  for (const n of lengths) total += n;
  return total;
}

/**
 * Lays out "[" + parts.join(",") + "]" in out (joinedBytes long): the brackets and commas here,
 * each part written by put(i, at) at its offset.
 */
function writeJoined(out: Uint8Array, lengths: readonly number[], put: (i: number, at: number) => void): void {
  out[0] = OPEN;
  let off = 1;
  lengths.forEach((n, i) => {
    if (i > 0) out[off++] = COMMA;
    put(i, off);
    off += n;
  });
  out[off] = CLOSE;
}

/** One memcpy per payload into a buffer of its own (transferable to a pool thread). */
export function joinPayloads(payloads: readonly Uint8Array[]): Uint8Array {
  const lengths = payloads.map((p) => p.byteLength);
  const out = new Uint8Array(new ArrayBuffer(joinedBytes(lengths)));
  writeJoined(out, lengths, (i, at) => out.set(payloads[i] as Uint8Array, at));
  return out;
}

/**
 * A batch whose payloads a pool thread reads from the spool's segment files and joins itself: its
 * bytes never pass through the main thread (whose garbage collector runs once per ~64 MB of
 * buffers allocated or received there, pausing every connection; see docs/design-notes.md).
 */
export interface BuildFromSpoolTask {
  readonly kind: 'build-spool';
  /** The entries' payloads in order: segment file, offset, length; deflated: a deflate run (gzip.ts deflateRun). */
  readonly parts: ReadonlyArray<{ readonly path: string; readonly offset: number; readonly length: number; readonly deflated?: boolean }>;
  readonly level: number;
  /** The body is handed back only when its gzip is larger than this (then it goes uncompressed). */
  readonly maxGzipBytes: number;
}

export interface BuildFromSpoolResult {
  /** The gzip of the body; null when it is larger than maxGzipBytes (then raw is the body). */
  readonly gz: Uint8Array | null;
  /** "[" + payloads.join(",") + "]" when the gzip is over maxGzipBytes; else null (rebuilt from gz if ever needed). */
  readonly raw: Uint8Array | null;
  readonly rawBytes: number;
}

/** Per pool thread: the joined body of the last batch (reused; gzip reads it synchronously). */
let scratch: Buffer = Buffer.alloc(0);

/** This thread's scratch buffer, grown to hold at least `bytes` (a whole batch at first). */
function scratchFor(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafeSlow(Math.max(bytes, 1024 * 1024 + 64 * 1024));
  return scratch;
}

export function buildFromSpool(task: BuildFromSpoolTask): BuildFromSpoolResult {
  if (task.parts.some((p) => p.deflated === true)) return stitchFromSpool(task);
  const lengths = task.parts.map((p) => p.length);
  const total = joinedBytes(lengths);
  const body = scratchFor(total).subarray(0, total);
  readParts(task.parts, (read) => writeJoined(body, lengths, (i, at) => read(i, body, at)));
  const gz = gzipWithin(body, task.level, task.maxGzipBytes);
  return { gz, raw: gz === null ? new Uint8Array(body) : null, rawBytes: total };
}

/**
 * A batch with deflate runs among its parts (syslog entries, compressed where they were parsed):
 * their DEFLATE data is stitched, not compressed again; a plain JSON part of the same stream (an
 * upload to the same DCR stream) is made a run here first.
 */
function stitchFromSpool(task: BuildFromSpoolTask): BuildFromSpoolResult {
  const total = task.parts.reduce((n, p) => n + p.length, 0);
  const buf = scratchFor(total);
  const runs: Uint8Array[] = [];
  readParts(task.parts, (read) => {
    let at = 0;
    task.parts.forEach((p, i) => {
      read(i, buf, at);
      const bytes = buf.subarray(at, at + p.length);
      runs.push(p.deflated === true ? bytes : deflateRun(bytes, task.level));
      at += p.length;
    });
  });
  const { gz, rawBytes } = stitchGzip(runs);
  // Incompressible records can make the gzip larger than the limit while their JSON is within it:
  // that batch goes uncompressed, as in buildFromSpool.
  if (gz.byteLength > task.maxGzipBytes) return { gz: null, raw: new Uint8Array(gunzipSync(gz)), rawBytes };
  return { gz, raw: null, rawBytes };
}

/** Reads part i's payload into out at `at`; consecutive parts of one segment file share its descriptor. */
function readParts(parts: BuildFromSpoolTask['parts'], use: (read: (i: number, out: Uint8Array, at: number) => void) => void): void {
  let fd = -1;
  let openPath = '';
  try {
    use((i, out, at) => {
      const p = parts[i] as BuildFromSpoolTask['parts'][number];
      if (p.path !== openPath) {
        if (fd >= 0) closeSync(fd);
        fd = -1; // so that a failed open below is not closed again
        fd = openSync(p.path, 'r');
        openPath = p.path;
      }
      for (let done = 0; done < p.length;) {
        const n = readSync(fd, out, at + done, p.length - done, p.offset + done);
        if (n === 0) throw Object.assign(new Error(`short read in ${p.path} at ${p.offset + done}`), { code: 'EIO' });
        done += n;
      }
    });
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

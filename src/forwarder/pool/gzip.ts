/**
 * gzip of upstream batches: libdeflate in C (native/deflate.c, addon portcullis_deflate) when it
 * is built, Node's zlib otherwise. Both write a standard gzip member (the same bytes inflate back;
 * the compressed bytes differ). libdeflate's level 1 is ~1.7x faster on the gateway's JSON
 * batches, and batch gzip is the largest single use of CPU under syslog load. Its decompressor
 * inflates gzip uploads (gunzipMember) about twice as fast as zlib.
 * PORTCULLIS_DEFLATE_ADDON names the addon file to load instead (the sanitizer build in CI); set
 * empty, it turns the native path off.
 */
import { constants, crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { loadOptionalAddon } from '../../util/addon.js';
import { ownArrayBuffer } from '../../util/buffers.js';
import { RUN_PREFIX_BYTES } from '../spool/frame.js';

export interface DeflateAddon {
  /** The gzip of input, or null when it does not fit in maxOutput bytes (0: no limit). */
  gzip(input: Uint8Array, level: number, maxOutput: number): Uint8Array | null;
  /** A deflate run of input (see deflateRun below). */
  deflateRun(input: Uint8Array, level: number): Uint8Array;
  /**
   * The data of the one gzip member input is, when it inflates to exactly outBytes; else null.
   * With `into` (at least outBytes long), inflated there: the result is a view of it.
   */
  gunzip(input: Uint8Array, outBytes: number, into?: Uint8Array): Uint8Array | null;
}

function isDeflateAddon(m: unknown): m is DeflateAddon {
  const a = m as DeflateAddon;
  return typeof m === 'object' && m !== null && typeof a.gzip === 'function' && typeof a.deflateRun === 'function' && typeof a.gunzip === 'function';
}

const loaded = loadOptionalAddon('portcullis_deflate', 'PORTCULLIS_DEFLATE_ADDON', (m): DeflateAddon | string =>
  isDeflateAddon(m) ? m : 'not this version of the deflate addon (no gzip, deflateRun or gunzip): rebuild with npm run build',
);

/** The addon, or null (then nativeDeflateStatus().reason says why). */
export const nativeDeflate: DeflateAddon | null = loaded.addon;

/** For `portcullis info`: the file the addon was loaded from, or why zlib compresses batches. */
export function nativeDeflateStatus(): { available: boolean; path: string; reason: string } {
  return { available: nativeDeflate !== null, path: loaded.path, reason: loaded.reason };
}

/**
 * The gzip of body at this level, in a buffer of its own (movable to another thread), or null
 * when it is larger than maxBytes: the native path then stops as soon as the output cannot fit.
 * `useNative: false` takes zlib (tests compare the two).
 */
export function gzipWithin(body: Uint8Array, level: number, maxBytes: number, useNative = true): Uint8Array | null {
  // The addon reads 0 as "no limit": a finite limit is at least 1.
  if (useNative && nativeDeflate !== null) return nativeDeflate.gzip(body, level, Number.isFinite(maxBytes) ? Math.max(1, maxBytes) : 0);
  const gz = gzipSync(body, { level });
  if (gz.byteLength > maxBytes) return null;
  // gzipSync's result may be a view on a larger buffer; a copy of its own can be moved.
  return ownArrayBuffer(gz) ? gz : new Uint8Array(gz);
}

/** The gzip of body at this level, in a buffer of its own. */
export function gzipBody(body: Uint8Array, level: number, useNative = true): Uint8Array {
  const gz = gzipWithin(body, level, Number.POSITIVE_INFINITY, useNative);
  // Without a limit the output always fits (libdeflate's bound): null would be a broken addon.
  if (gz === null) throw new Error('portcullis_deflate: no output without a limit');
  return gz;
}

/**
 * The inflated data of body when body is exactly one gzip member whose data is outBytes long (the
 * length its trailer states, which the caller has bounded); null when the addon is not built or
 * body is anything else (corrupt, another size, several members, bytes after the member). The
 * fast path only: on null, the caller inflates with zlib, which decides what the body is. The
 * output never exceeds outBytes, so a lying trailer cannot make this inflate more.
 */
export function gunzipMember(body: Uint8Array, outBytes: number, useNative = true): Uint8Array | null {
  if (!useNative || nativeDeflate === null || body.byteLength === 0) return null;
  return nativeDeflate.gunzip(body, outBytes);
}

/**
 * gunzipMember into a buffer the caller keeps (at least outBytes long): a view of its first
 * outBytes bytes, valid until the next call with it. For a reader that is done with the data
 * before it returns (the emulator's count mode): no megabyte of new external memory per body,
 * which V8 counts towards its next full GC.
 */
export function gunzipMemberInto(body: Uint8Array, outBytes: number, into: Uint8Array): Uint8Array | null {
  if (nativeDeflate === null || body.byteLength === 0) return null;
  return nativeDeflate.gunzip(body, outBytes, into);
}

/**
 * A deflate run's CRC-32 (u32 LE) and input length (u32 LE), in front of its DEFLATE data: a spool
 * format (frame.ts), defined there, since the spool does not import the pool. native/deflate.c's
 * RUN_PREFIX is the same 8 (test/forwarder/unit/stitch.unit.test.ts holds the two to it).
 */
export { RUN_PREFIX_BYTES };

/**
 * A deflate run of input, in a buffer of its own: [CRC-32 of input][input length][raw DEFLATE of
 * input, no block final, ending in a sync flush (an empty stored block)]. Runs of consecutive
 * parts of a body concatenate into one DEFLATE stream (stitch.ts), so a part is compressed once,
 * where it is made, and never again. Level 1..9 (the addon goes to 12). Empty input: the prefix
 * alone.
 */
export function deflateRun(input: Uint8Array, level: number, useNative = true): Uint8Array {
  if (useNative && nativeDeflate !== null) return nativeDeflate.deflateRun(input, level);
  const data = input.byteLength > 0 ? deflateRawSync(input, { level, finishFlush: constants.Z_SYNC_FLUSH }) : Buffer.alloc(0);
  const out = Buffer.allocUnsafeSlow(RUN_PREFIX_BYTES + data.byteLength);
  out.writeUInt32LE(input.byteLength > 0 ? crc32(input) : 0, 0);
  out.writeUInt32LE(input.byteLength, 4);
  out.set(data, RUN_PREFIX_BYTES);
  return out;
}

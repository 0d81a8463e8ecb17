/**
 * gzip of upstream batches: libdeflate in C (native/deflate.c, addon portcullis_deflate) when it
 * is built, Node's zlib otherwise. Both write a standard gzip member (the same bytes inflate back;
 * the compressed bytes differ). libdeflate's level 1 is ~1.7x faster on the gateway's JSON
 * batches, and batch gzip is the largest single use of CPU under syslog load.
 * PORTCULLIS_DEFLATE_ADDON names the addon file to load instead (the sanitizer build in CI); set
 * empty, it turns the native path off.
 */
import { gzipSync } from 'node:zlib';
import { loadOptionalAddon } from '../../util/addon.js';
import { ownArrayBuffer } from '../../util/buffers.js';

export interface DeflateAddon {
  /** The gzip of input, or null when it does not fit in maxOutput bytes (0: no limit). */
  gzip(input: Uint8Array, level: number, maxOutput: number): Uint8Array | null;
}

function isDeflateAddon(m: unknown): m is DeflateAddon {
  return typeof m === 'object' && m !== null && typeof (m as DeflateAddon).gzip === 'function';
}

const loaded = loadOptionalAddon('portcullis_deflate', 'PORTCULLIS_DEFLATE_ADDON', (m): DeflateAddon | string =>
  isDeflateAddon(m) ? m : 'not the deflate addon (no gzip): rebuild with npm run build',
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

/**
 * CRC-32 (gzip's and zlib's) for the spool's frames: libdeflate's, from the deflate addon
 * (native/deflate.c; PCLMULQDQ where the CPU has it, ~6x Node's zlib.crc32 on a 9 KB upload),
 * when it is built, and Node's zlib.crc32 otherwise. The two give the same values, so a spool
 * written with one reads with the other. PORTCULLIS_DEFLATE_ADDON applies, as in pool/gzip.ts.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import { loadOptionalAddon } from './addon.js';

interface Crc32Addon {
  crc32(input: Uint8Array, value: number): number;
}

const loaded = loadOptionalAddon('portcullis_deflate', 'PORTCULLIS_DEFLATE_ADDON', (m): Crc32Addon | string =>
  typeof m === 'object' && m !== null && typeof (m as Crc32Addon).crc32 === 'function'
    ? (m as Crc32Addon)
    : 'not this version of the deflate addon (no crc32): rebuild with npm run build',
);
const nativeCrc32: Crc32Addon | null = loaded.addon;

/** The CRC-32 of data continued from value (0 to start); `useNative: false` takes zlib (tests compare). */
export function crc32(data: Uint8Array, value = 0, useNative = true): number {
  // Nothing to add: the value as it was. (zlib.crc32 answers 0 for an empty view of a zero-length
  // ArrayBuffer, whatever the value: zlib reads its NULL data pointer as "start a new CRC".)
  if (data.byteLength === 0) return value >>> 0;
  return useNative && nativeCrc32 !== null ? nativeCrc32.crc32(data, value) : zlibCrc32(data, value);
}

/** Whether the native CRC-32 is in use (tests check that they test it). */
export const nativeCrc32Loaded = nativeCrc32 !== null;

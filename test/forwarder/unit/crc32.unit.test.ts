import { crc32 as zlibCrc32 } from 'node:zlib';
import { createRequire } from 'node:module';
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32, nativeCrc32Loaded } from '../../../src/util/crc32.js';
import { findAddon } from '../../../src/util/addon.js';

/**
 * Spool frames carry a CRC-32 that libdeflate computes (native/deflate.c) when the addon is built
 * and Node's zlib otherwise: a spool written by one gateway is read by another, maybe built
 * without the addon, so the two must agree on every input and every starting value. CI builds
 * the addon and runs this file again under ASan/UBSan (test/sanitize.sh).
 */
const required = process.env.CI === 'true' || !!process.env.PORTCULLIS_DEFLATE_ADDON;

it('the native CRC-32 is in use (CI builds the addon)', () => {
  if (!required && !nativeCrc32Loaded) return;
  expect(nativeCrc32Loaded).toBe(true);
});

const bytes = fc.oneof(fc.uint8Array({ maxLength: 70_000 }), fc.constantFrom(new Uint8Array(0), new Uint8Array(1), new Uint8Array(200_000).fill(0xff)));

it('gives zlib.crc32 for any bytes, any view into a larger buffer, from any starting value', () => {
  fc.assert(
    fc.property(bytes, fc.nat(8), fc.nat(8), fc.integer({ min: 0, max: 0xffffffff }), (data, head, tail, start) => {
      // A view that starts and ends inside its ArrayBuffer: the addon must read only the view.
      const outer = new Uint8Array(head + data.length + tail).fill(0xa5);
      outer.set(data, head);
      const view = outer.subarray(head, head + data.length);
      // Of nothing, the starting value (zlib.crc32 says 0 when the ArrayBuffer is empty too).
      const want = (v: number): number => (data.length === 0 ? v : zlibCrc32(view, v));
      expect(crc32(view, start)).toBe(want(start));
      expect(crc32(view)).toBe(want(0));
      expect(crc32(view, start, false)).toBe(want(start));
    }),
  );
});

it('continues: the CRC-32 of a then b is the CRC-32 of a and b joined', () => {
  fc.assert(
    fc.property(bytes, bytes, (a, b) => {
      const joined = new Uint8Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      expect(crc32(b, crc32(a))).toBe(crc32(joined));
    }),
  );
});

it('the addon refuses what is not (Uint8Array, uint32), with a TypeError, not a crash', () => {
  const path = process.env.PORTCULLIS_DEFLATE_ADDON || findAddon('portcullis_deflate');
  if (!nativeCrc32Loaded || !path) return;
  const addon = createRequire(import.meta.url)(path) as { crc32: (...a: unknown[]) => number };
  for (const args of [
    [],
    [new Uint8Array(1)],
    ['text', 0],
    [new Uint16Array(2), 0],
    [new Uint8Array(1), -1],
    [new Uint8Array(1), 2 ** 32],
    [new Uint8Array(1), 1.5],
    [new Uint8Array(1), Number.NaN],
  ])
    expect(() => addon.crc32(...args), JSON.stringify(args)).toThrow(TypeError);
  expect(addon.crc32(new Uint8Array(0), 1234)).toBe(1234);
});

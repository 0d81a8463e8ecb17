import { gunzipSync, gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import fc from 'fast-check';
import { gunzipMember, gunzipMemberInto, gzipBody, gzipWithin, nativeDeflate, nativeDeflateStatus } from '../../../src/forwarder/pool/gzip.js';

/**
 * Upstream batches are gzipped by libdeflate (native/deflate.c) when it is built, by Node's zlib
 * otherwise. Whatever either writes must inflate, with the gunzip every receiver uses, to the
 * batch as it was. CI builds the addon and runs this file again under ASan/UBSan (test/sanitize.sh).
 */
const required = process.env.CI === 'true' || !!process.env.PORTCULLIS_DEFLATE_ADDON;

it('the libdeflate addon is built and loads (CI builds it; without a compiler zlib compresses)', () => {
  if (!required && !nativeDeflate) return;
  expect(nativeDeflateStatus().reason).toBe('');
  expect(nativeDeflate).not.toBeNull();
});

/** Batch-like JSON (repetitive, as gzip sees it in production), random bytes, and the edges. */
const bodies = fc.oneof(
  fc
    .array(fc.record({ TimeGenerated: fc.date({ noInvalidDate: true }), Computer: fc.string(), n: fc.integer() }), { maxLength: 400 })
    .map((rows) => new TextEncoder().encode(JSON.stringify(rows))),
  fc.uint8Array({ maxLength: 20_000 }),
  fc.constantFrom(new Uint8Array(0), new Uint8Array(1), new Uint8Array(300_000).fill(0x61)),
);

/**
 * Pieces of a few random strings, repeated in any order, up to ~0.5 MB: matches of every length
 * (3-258) at every distance, and inputs that slide the 32 KiB window many times. Level 1 (the
 * fastest compressor, whose hashing of long matches is patched: native/vendor/libdeflate/README.md)
 * must give back exactly what it was given.
 */
const repetitive = fc
  .tuple(
    fc.array(fc.uint8Array({ minLength: 1, maxLength: 300, size: 'max' }), { minLength: 1, maxLength: 8 }),
    fc.array(fc.nat(), { minLength: 100, maxLength: 3000, size: 'max' }),
  )
  .map(([pool, picks]) => Buffer.concat(picks.map((k) => pool[k % pool.length] as Uint8Array)));

const paths: Array<[string, boolean]> = [['zlib', false]];
if (nativeDeflate) paths.push(['native', true]);

for (const [name, useNative] of paths) {
  it(`${name}: any body at any level inflates back to itself, in a buffer of its own (movable to the main thread)`, () => {
    fc.assert(
      fc.property(bodies, fc.constantFrom(1, 2, 6, 9), (body, level) => {
        const gz = gzipBody(body, level, useNative);
        expect(Buffer.from(gunzipSync(gz)).equals(Buffer.from(body))).toBe(true);
        expect(gz.byteOffset).toBe(0);
        expect(gz.byteLength).toBe(gz.buffer.byteLength);
      }),
      { numRuns: 150 },
    );
  });

  it(`${name}: level 1 on bodies of repeated pieces (every match length, window slides) inflates back to itself`, () => {
    fc.assert(
      fc.property(repetitive, (body) => {
        expect(Buffer.from(gunzipSync(gzipBody(body, 1, useNative))).equals(body)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it(`${name}: within a limit, the same gzip when it fits and null when it is one byte over`, () => {
    fc.assert(
      fc.property(bodies, (body) => {
        const whole = gzipBody(body, 1, useNative);
        const fits = gzipWithin(body, 1, whole.byteLength, useNative);
        expect(fits).not.toBeNull();
        expect(Buffer.from(gunzipSync(fits as Uint8Array)).equals(Buffer.from(body))).toBe(true);
        expect(gzipWithin(body, 1, whole.byteLength - 1, useNative)).toBeNull();
      }),
      { numRuns: 100 },
    );
  });
}

it.runIf(nativeDeflate !== null)(
  'native: an incompressible 1 MiB batch over a 1 MiB limit is null, a compressible one fits (the batcher then sends JSON)',
  () => {
    const noise = randomBytes(1024 * 1024);
    expect(gzipWithin(noise, 1, 1024 * 1024)).toBeNull();
    const json = new TextEncoder().encode(JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i, host: `srv-${i % 50}` }))));
    const gz = gzipWithin(json, 1, 1024 * 1024);
    expect(gz).not.toBeNull();
    expect(gunzipSync(gz as Uint8Array).toString()).toBe(new TextDecoder().decode(json));
  },
);

it.runIf(nativeDeflate !== null)('native gunzip: one member of the stated size inflates, in a buffer of its own; any other size is null', () => {
  fc.assert(
    fc.property(bodies, fc.integer({ min: 1, max: 64 }), (body, off) => {
      const gz = gzipSync(body, { level: 6 });
      const out = gunzipMember(gz, body.byteLength);
      expect(out).not.toBeNull();
      expect(Buffer.from(out as Uint8Array).equals(Buffer.from(body))).toBe(true);
      expect((out as Uint8Array).byteLength).toBe((out as Uint8Array).buffer.byteLength);
      // The output is exactly the size asked for: more or less is refused, never overrun.
      expect(gunzipMember(gz, body.byteLength + off)).toBeNull();
      if (body.byteLength >= off) expect(gunzipMember(gz, body.byteLength - off)).toBeNull();
      // A view inside a larger buffer reads only its own bytes.
      const framed = Buffer.concat([Buffer.from([1, 2, 3]), gz, Buffer.from([4])]);
      expect(Buffer.from(gunzipMember(framed.subarray(3, 3 + gz.length), body.byteLength) as Uint8Array).equals(Buffer.from(body))).toBe(true);
      expect(gunzipMember(gz, body.byteLength, false)).toBeNull();
    }),
    { numRuns: 100 },
  );
});

it.runIf(nativeDeflate !== null)(
  'native gunzip into a kept buffer: a view of it with the data; other sizes are null, its bytes past the data untouched',
  () => {
    const into = new Uint8Array(600_000);
    fc.assert(
      fc.property(bodies, fc.integer({ min: 1, max: 64 }), (body, off) => {
        const gz = gzipSync(body, { level: 6 });
        into.fill(0xa5);
        const out = gunzipMemberInto(gz, body.byteLength, into);
        expect(out).not.toBeNull();
        expect((out as Uint8Array).buffer).toBe(into.buffer);
        expect((out as Uint8Array).byteLength).toBe(body.byteLength);
        expect(Buffer.from(out as Uint8Array).equals(Buffer.from(body))).toBe(true);
        expect(into[body.byteLength]).toBe(0xa5);
        expect(gunzipMemberInto(gz, body.byteLength + off, into)).toBeNull();
        if (body.byteLength >= off) expect(gunzipMemberInto(gz, body.byteLength - off, into)).toBeNull();
        // A view inside a larger buffer is filled from its own start.
        const window = into.subarray(7, 7 + body.byteLength);
        const inWindow = gunzipMemberInto(gz, body.byteLength, window) as Uint8Array;
        expect(inWindow.byteOffset).toBe(7);
        expect(Buffer.from(inWindow).equals(Buffer.from(body))).toBe(true);
      }),
      { numRuns: 100 },
    );
    // A buffer too small for the stated size is refused before any byte is written.
    const gz = gzipSync(Buffer.alloc(100, 1));
    const small = new Uint8Array(99).fill(7);
    expect(() => gunzipMemberInto(gz, 100, small)).toThrow(TypeError);
    expect(small.every((b) => b === 7)).toBe(true);
    const gunzip = (...args: unknown[]) => ((nativeDeflate as NonNullable<typeof nativeDeflate>).gunzip as (...a: unknown[]) => unknown)(...args);
    // The output may not share bytes with the input (libdeflate reads it while it writes).
    const shared = new Uint8Array(gz.length + 200);
    shared.set(gz, 0);
    const input = shared.subarray(0, gz.length);
    expect(() => gunzipMemberInto(input, 100, shared.subarray(gz.length - 1))).toThrow(TypeError);
    expect(() => gunzipMemberInto(input, 100, shared)).toThrow(TypeError);
    expect(Buffer.from(gunzipMemberInto(input, 100, shared.subarray(gz.length)) as Uint8Array).equals(Buffer.alloc(100, 1))).toBe(true);
    expect(() => gunzip(gz, 100, new Uint16Array(100))).toThrow(TypeError);
    expect(() => gunzip(gz, 100, 'text')).toThrow(TypeError);
  },
);

it.runIf(nativeDeflate !== null)('native: bad arguments are type errors, not a crash', () => {
  const addon = nativeDeflate as NonNullable<typeof nativeDeflate>;
  const call = (...args: unknown[]) => (addon.gzip as (...a: unknown[]) => unknown)(...args);
  expect(() => call(new Uint8Array(4), 13, 0)).toThrow(TypeError);
  expect(() => call(new Uint8Array(4), -1, 0)).toThrow(TypeError);
  expect(() => call(new Uint16Array(4), 1, 0)).toThrow(TypeError);
  expect(() => call('text', 1, 0)).toThrow(TypeError);
  expect(() => call(new Uint8Array(4), 1, -5)).toThrow(TypeError);
  expect(() => call(new Uint8Array(4), 1)).toThrow(TypeError);
  const gunzip = (...args: unknown[]) => (addon.gunzip as (...a: unknown[]) => unknown)(...args);
  expect(() => gunzip(new Uint8Array(4))).toThrow(TypeError);
  expect(() => gunzip(new Uint16Array(4), 1)).toThrow(TypeError);
  expect(() => gunzip(new Uint8Array(4), -1)).toThrow(TypeError);
  expect(() => gunzip(new Uint8Array(4), 1.5)).toThrow(TypeError);
  expect(() => gunzip(new Uint8Array(4), 2 ** 32)).toThrow(TypeError);
  expect(gunzip(new Uint8Array(4), 10)).toBeNull();
  expect(gunzip(new Uint8Array(0), 0)).toBeNull();
});

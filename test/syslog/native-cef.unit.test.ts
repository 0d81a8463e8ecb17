/**
 * The CEF fast path in C (native/cef.c) gives the records, counts and entries of the plain parser
 * (and of fast.ts, the same path in JavaScript): the vendor corpus, the bench's lines, generated
 * messages over every rule the paths decide by, in newline and octet-counted blocks, with entries
 * small enough that records spill into the next one. CI runs this file again against the
 * AddressSanitizer/UBSan build (test/sanitize.sh, PORTCULLIS_CEF_ADDON).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../src/syslog/parse/task.js';
import { nativeCef, nativeCefError, R_OUT_LEN, R_STATUS, RESULT_SLOTS, S_DECLINED, S_DONE, S_FULL } from '../../src/syslog/parse/native.js';
import { cefLines } from '../../bench/lib/cef-lines.mjs';
import { CSL, SYSLOG, cefMessage, parsedBlock, routeSets } from './cef-arbitraries.js';

const corpus = JSON.parse(readFileSync(new URL('./corpus/cef-vendors.json', import.meta.url), 'utf8')) as Array<{ line: string }>;
const required = process.env.CI === 'true' || !!process.env.PORTCULLIS_CEF_ADDON;

type Mode = 'newline' | 'octet';
function block(lines: string[], mode: Mode): Buffer {
  return Buffer.from(mode === 'newline' ? lines.map((l) => `${l}\n`).join('') : lines.map((l) => `${Buffer.byteLength(l)} ${l}`).join(''));
}

/** runParse three ways (C path on, JavaScript fast path only, plain only), as comparable values. */
function threeWays(bytes: Buffer, mode: Mode, routes: RouteSpec[], entryMaxBytes = 960 * 1024, entryTargetBytes?: number) {
  return {
    native: parsedBlock(bytes, mode, routes, entryMaxBytes, {}, entryTargetBytes),
    js: parsedBlock(bytes, mode, routes, entryMaxBytes, { native: false }, entryTargetBytes),
    plain: parsedBlock(bytes, mode, routes, entryMaxBytes, { fast: false }, entryTargetBytes),
  };
}

describe('the CEF fast path in C', () => {
  it('is built and loads (CI builds it; a machine without a compiler runs fast.ts instead)', () => {
    if (!required && !nativeCef) return;
    expect(nativeCefError).toBe('');
    expect(nativeCef).not.toBeNull();
  });

  const maybe = nativeCef ? it : it.skip;

  maybe("writes the plain parser's entries for the corpus and the bench lines, in both framings, whole or spilling over entries", () => {
    const lines = [...corpus.map((c) => c.line), ...cefLines(3000).split('\n').filter(Boolean)];
    for (const mode of ['newline', 'octet'] as const) {
      // [max, target]: entries close at the target; a record larger than it still goes whole.
      for (const [max, target] of [
        [960 * 1024, undefined],
        [4000, undefined],
        [960 * 1024, 64 * 1024],
        [960 * 1024, 300],
      ] as const) {
        const { native, js, plain } = threeWays(block(lines, mode), mode, [CSL], max, target);
        expect(native).toEqual(plain);
        expect(js).toEqual(plain);
        expect(native.counts.cef).toBe(lines.length);
      }
    }
  });

  maybe('agrees with the plain parser on generated messages, routes, filters, framings and entry sizes', () => {
    fc.assert(
      fc.property(
        fc.array(cefMessage, { minLength: 1, maxLength: 12 }),
        routeSets,
        fc.constantFrom<Mode>('newline', 'octet'),
        fc.constantFrom(300, 900, 960 * 1024),
        fc.constantFrom(undefined, 300, 2000),
        (lines, routes, mode, max, target) => {
          const { native, plain } = threeWays(block(lines, mode), mode, routes, max, target);
          expect(native).toEqual(plain);
        },
      ),
      { numRuns: 3000 },
    );
  });

  maybe('never writes past the output buffer it is given, whatever room is left', () => {
    const addon = nativeCef;
    if (!addon) throw new Error('no addon');
    const input = block(cefLines(20).split('\n').filter(Boolean), 'newline');
    const enc = (s: string) => Buffer.from(s);
    const result = new Float64Array(RESULT_SLOTS);
    for (const room of [0, 1, 50, 300, 700, 2000]) {
      for (const [outLen, inEntry] of [
        [0, 0],
        [room, 1],
      ] as const) {
        // The buffer is a view on a larger one: bytes past its end must stay as they were.
        const backing = Buffer.alloc(room + outLen + 1024, 0xa5);
        const out = backing.subarray(0, room + outLen);
        addon.writeBlock(
          input,
          0,
          input.length,
          true,
          out,
          outLen,
          inEntry,
          1 << 20,
          enc('{"T":"x","Computer":'),
          enc(',"C":"gw","DeviceVendor":'),
          enc('"1.2.3.4"'),
          0,
          7,
          result,
        );
        expect(backing.subarray(room + outLen).every((b) => b === 0xa5)).toBe(true);
        expect(result[R_OUT_LEN]).toBeLessThanOrEqual(out.length);
        expect([S_DONE, S_DECLINED, S_FULL]).toContain(result[R_STATUS]);
      }
    }
  });

  maybe('takes what the plain parser drops or sends elsewhere in the same block, in order (declined, unrouted, filtered, Syslog)', () => {
    const lines = [
      '<14>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|src=10.0.0.1',
      '<14>Mar  1 10:15:30 host sshd[1]: not CEF at all',
      '<134>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|src=10.0.0.2 src=10.0.0.3',
      '<134>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|dst=10.0.0.4 msg=caf\u00e9',
      '<15>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|dst=10.0.0.5',
      '',
      '<14>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|dst=10.0.0.6',
    ];
    for (const routes of [[CSL, SYSLOG], [{ ...CSL, maxSeverity: 6 }, SYSLOG], [{ ...CSL, dropFacilities: [16] }]]) {
      const { native, plain } = threeWays(block(lines, 'newline'), 'newline', routes);
      expect(native).toEqual(plain);
    }
  });
});

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { nativeJson, nativeJsonStatus } from '../../../src/forwarder/pool/json-native.js';
import { scanJson, scanJsonJs, type JsonScan } from '../../../src/forwarder/pool/json-scan.js';

/**
 * Both scanners, the JavaScript one and the C one (native/json.c, through scanJson), are held to
 * JSON.parse. CI builds the addon and runs this file again under ASan/UBSan (test/sanitize.sh).
 */
const required = process.env.CI === 'true' || !!process.env.PORTCULLIS_JSON_ADDON;
let scan: (b: Uint8Array) => JsonScan = scanJsonJs;

/** What JSON.parse says of the same bytes, in scanJson's terms. */
function reference(bytes: Uint8Array): { ok: boolean; top?: string; items?: number; allObjects?: boolean } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { ok: false };
  }
  if (Array.isArray(v))
    return { ok: true, top: 'array', items: v.length, allObjects: v.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x)) };
  return { ok: true, top: v !== null && typeof v === 'object' ? 'object' : 'other', items: 0, allObjects: true };
}

function agree(bytes: Uint8Array): void {
  const got = scan(bytes);
  const want = reference(bytes);
  if (!want.ok) {
    expect(got.ok, Buffer.from(bytes).toString('latin1')).toBe(false);
    return;
  }
  expect(got).toEqual({ ok: true, top: want.top, items: want.items, allObjects: want.allObjects });
}

const enc = new TextEncoder();
/** Bytes that matter to JSON's grammar, so random texts hit its edges rather than being rejected at byte 0. */
const TOKENS = [
  '{',
  '}',
  '[',
  ']',
  '"',
  ',',
  ':',
  '\\',
  '/',
  '0',
  '1',
  '9',
  '.',
  '-',
  '+',
  'e',
  'E',
  'u',
  'a',
  'F',
  'true',
  'false',
  'null',
  ' ',
  '\n',
  '\t',
  '\u0001',
  'é',
  '\ufeff',
];

it('the C scanner is built and loads (CI builds it; without a compiler the JavaScript one runs)', () => {
  if (!required && !nativeJson) return;
  expect(nativeJsonStatus().reason).toBe('');
  expect(nativeJson).not.toBeNull();
});

const variants: Array<[string, (b: Uint8Array) => JsonScan]> = [['javascript', scanJsonJs]];
if (nativeJson) variants.push(['native', scanJson]);

describe.each(variants)('scanJson (%s)', (_name, scanner) => {
  beforeAll(() => {
    scan = scanner;
  });

  it('accepts what JSON.parse accepts, with the same top level, item count and item kinds', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => agree(enc.encode(text))),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.array(fc.json({ maxDepth: 3 }), { maxLength: 8 }), (items) => agree(enc.encode(`[${items.join(',')}]`))),
      { numRuns: 1_000 },
    );
  });

  it('refuses what JSON.parse refuses: JSON texts with one edit, and texts of grammar tokens', () => {
    const edited = fc
      .tuple(fc.json({ maxDepth: 3 }), fc.nat(), fc.constantFrom(...TOKENS), fc.constantFrom('insert', 'delete', 'replace', 'truncate'))
      .map(([text, at, token, how]) => {
        const i = text.length === 0 ? 0 : at % text.length;
        if (how === 'insert') return text.slice(0, i) + token + text.slice(i);
        if (how === 'delete') return text.slice(0, i) + text.slice(i + 1);
        if (how === 'replace') return text.slice(0, i) + token + text.slice(i + 1);
        return text.slice(0, i);
      });
    fc.assert(
      fc.property(edited, (text) => agree(enc.encode(text))),
      { numRuns: 5_000 },
    );
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 24 }), (parts) => agree(enc.encode(parts.join('')))),
      { numRuns: 5_000 },
    );
  });

  it('takes any byte of 0x80 and above inside a string (as JSON.parse does after UTF-8 decoding) and none outside', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 12 }), fc.boolean(), (junk, inside) => {
        const high = junk.map((b) => b | 0x80);
        const bytes = inside ? Buffer.concat([enc.encode('[{"a":"'), high, enc.encode('"}]')]) : Buffer.concat([enc.encode('[{"a":1}'), high, enc.encode(']')]);
        agree(bytes);
      }),
    );
    // Every single byte, inside a string and between tokens.
    for (let b = 0; b < 256; b++) {
      agree(Buffer.concat([enc.encode('[{"a":"x'), Uint8Array.of(b), enc.encode('y"}]')]));
      agree(Buffer.concat([enc.encode('[{"a":1}'), Uint8Array.of(b), enc.encode(']')]));
    }
    // ... and at every place of a long string, where the C scanner looks at 16 bytes per step
    // (native/json.c skip_plain): the first, the last and the one past a step, near the end.
    const pad = 'p'.repeat(40);
    for (const b of [0x00, 0x0a, 0x1f, 0x20, 0x22, 0x5c, 0x7f, 0x80, 0xff]) {
      for (let at = 0; at <= pad.length; at++) {
        agree(Buffer.concat([enc.encode(`[{"a":"${pad.slice(0, at)}`), Uint8Array.of(b), enc.encode(`${pad.slice(at)}"}]`)]));
        agree(Buffer.concat([enc.encode(`"${pad.slice(0, at)}`), Uint8Array.of(b), enc.encode(`${pad.slice(at)}`)]));
      }
    }
  });

  it('numbers, escapes and literals at the edges of the grammar', () => {
    for (const text of [
      '0',
      '-0',
      '01',
      '1.',
      '.5',
      '1e',
      '1e+',
      '1E-7',
      '-',
      '2.50e10',
      '"\\u12"',
      '"\\u12aF"',
      '"\\x"',
      '"a\tb"',
      '"\\/"',
      'tru',
      'nul',
      'true ',
      ' [ ] ',
      '[,]',
      '[1,]',
      '{"a"}',
      '{"a":1,}',
      '{,}',
      '',
      ' ',
      '[]]',
      '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
      '"\ud800"',
    ]) {
      agree(enc.encode(text));
    }
    // Nesting past the scanner's first stack size.
    agree(enc.encode('['.repeat(5_000) + ']'.repeat(5_000)));
    agree(enc.encode('['.repeat(5_000) + ']'.repeat(4_999)));
  });
});

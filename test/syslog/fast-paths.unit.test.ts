/**
 * The pool's fast paths give the same records as the plain ones they replace: cslJson (JSON
 * written directly from the extension's pairs) against JSON.stringify(cslRecord(...)) over the
 * vendor corpus, the bench's lines and generated extensions (repeated keys, values that do not fit
 * their column's type, characters JSON escapes); and the extension scanner (from '=' to '=')
 * against a character-by-character reading of the rules.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSyslog } from '../../src/syslog/parse/syslog.js';
import { cefEvent, escapeValue, parseCefPairs, parseExtensions, unescapeValue } from '../../src/syslog/parse/cef.js';
import { cslJson, cslRecord, type RouteSpec } from '../../src/syslog/parse/task.js';
import { CefFastPath, FAST_DECLINED } from '../../src/syslog/parse/fast.js';
import { EntryBuilder } from '../../src/syslog/parse/entries.js';
import { CEF_COLUMNS } from '../../src/syslog/parse/columns.js';
import { cefLines } from '../../bench/lib/cef-lines.mjs';
import { CSL, cefMessage, parsedBlock, routeSets } from './cef-arbitraries.js';

const NOW = new Date('2026-03-02T12:00:00Z');
const TASK = { receivedAt: '2026-03-02T12:00:00.000Z', collector: 'gw-1' };
const corpus = JSON.parse(readFileSync(new URL('./corpus/cef-vendors.json', import.meta.url), 'utf8')) as Array<{ line: string }>;

/** cslJson's text, or the plain way's when it declines (a repeated key); and the plain way's. */
function both(line: string): { fast: string | null; plain: string } {
  const p = parseSyslog(line, NOW);
  const cef = parseCefPairs(p.message);
  if (!cef) throw new Error(`not CEF: ${line}`);
  return { fast: cslJson(p, cef, '192.0.2.7', TASK), plain: JSON.stringify(cslRecord(p, cefEvent(cef), '192.0.2.7', TASK)) };
}

/** The extension rules read one character at a time (the reading the scanner replaced). */
function extensionsByCharacter(ext: string): Map<string, string> {
  const keys: Array<{ key: string; keyStart: number; valueStart: number }> = [];
  for (let i = 0; i < ext.length; i++) {
    const c = ext[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c !== '=') continue;
    let s = i;
    while (s > 0 && ext[s - 1] !== ' ') s--;
    const key = ext.slice(s, i);
    if (/^[A-Za-z0-9_.\-[\]]+$/.test(key)) keys.push({ key, keyStart: s, valueStart: i + 1 });
  }
  const out = new Map<string, string>();
  keys.forEach((k, n) => {
    let end = keys[n + 1]?.keyStart ?? ext.length;
    while (end > k.valueStart && ext[end - 1] === ' ') end--;
    out.set(k.key, unescapeValue(ext.slice(k.valueStart, end)));
  });
  return out;
}

describe('CommonSecurityLog JSON written directly', () => {
  it('maps no two CEF keys to one column, and none to a header column (cslJson relies on it)', () => {
    const columns = [...CEF_COLUMNS.values()].map(([c]) => c);
    expect(new Set(columns).size).toBe(columns.length);
    const header = [
      'TimeGenerated',
      'Computer',
      'CollectorHostName',
      'DeviceVendor',
      'DeviceProduct',
      'DeviceVersion',
      'DeviceEventClassID',
      'Activity',
      'LogSeverity',
    ];
    expect(columns.filter((c) => header.includes(c) || c === 'AdditionalExtensions')).toEqual([]);
  });

  it('is the same text as JSON.stringify(cslRecord) for the vendor corpus and the bench lines', () => {
    const lines = [...corpus.map((c) => c.line), ...cefLines(600).split('\n').filter(Boolean)];
    for (const line of lines) {
      const { fast, plain } = both(line);
      expect(fast, line).toBe(plain);
    }
  });

  it('is the same for any extension of known and unknown keys, bad typed values and escaped text; declines repeated keys', () => {
    const key = fc.constantFrom('src', 'dst', 'spt', 'dpt', 'cnt', 'rt', 'act', 'cs1', 'cs1Label', 'suser', 'request', 'vendorKey', 'x_y', 'other.key');
    const value = fc.oneof(
      fc.constantFrom('10.0.0.1', '443', '-1', '99999999999', 'Mar 01 2024 10:15:30 GMT', '1709288467000', 'a b', ''),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 12 }), (pairs) => {
        const ext = pairs.map(([k, v]) => `${k}=${escapeValue(v)}`).join(' ');
        const { fast, plain } = both(`<14>Mar  1 10:15:30 fw CEF:0|V "q"|P\\\\|1.0|id|name\u0001|5|${ext}`);
        const repeated = new Set(pairs.map(([k]) => k)).size < pairs.length;
        if (fast === null) expect(repeated).toBe(true);
        else expect(fast).toBe(plain);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('CEF extension scanner', () => {
  it('finds the same pairs as reading the rules character by character', () => {
    const ch = fc.constantFrom('a', 'k', '1', '=', ' ', '\\', '|', '-', '[', '.', '_', 'n', '\n', 'é');
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 40 }), (chars) => {
        const ext = chars.join('');
        expect([...parseExtensions(ext)]).toEqual([...extensionsByCharacter(ext)]);
      }),
      { numRuns: 5000 },
    );
  });
});

/** runParse over text (newline framing) with the byte fast path (not the C one) and without it. */
function parseBoth(text: string, routes: RouteSpec[], entryMaxBytes = 960 * 1024) {
  const bytes = Buffer.from(text);
  return {
    fast: parsedBlock(bytes, 'newline', routes, entryMaxBytes, { native: false }),
    plain: parsedBlock(bytes, 'newline', routes, entryMaxBytes, { fast: false }),
  };
}

describe('the byte fast path (fast.ts)', () => {
  it("writes the plain path's bytes for the corpus and the bench lines, and takes them all", () => {
    const lines = [...corpus.map((c) => c.line), ...cefLines(2000).split('\n').filter(Boolean)];
    const { fast, plain } = parseBoth(lines.join('\n'), [CSL]);
    expect(fast).toEqual(plain);
    expect(fast.counts.cef).toBe(lines.length);
    // Every bench line goes the byte way (none declined): the bench measures this path.
    const path = new CefFastPath(TASK.receivedAt, TASK.collector);
    const builder = new EntryBuilder(960 * 1024);
    const declined = cefLines(2000)
      .split('\n')
      .filter(Boolean)
      .filter((line) => {
        const b = Buffer.from(line);
        return path.write(b, 0, b.length, CefFastPath.sourceJson('192.0.2.7'), [CSL], [0], () => builder) === FAST_DECLINED;
      });
    expect(declined).toEqual([]);
  });

  it('agrees with the plain path on generated messages, routes, filters and entry sizes', () => {
    fc.assert(
      fc.property(fc.array(cefMessage, { minLength: 1, maxLength: 8 }), routeSets, fc.constantFrom(300, 700, 960 * 1024), (lines, rs, max) => {
        const { fast, plain } = parseBoth(lines.join('\n'), rs, max);
        expect(fast).toEqual(plain);
      }),
      { numRuns: 3000, endOnFailure: true },
    );
  });
});

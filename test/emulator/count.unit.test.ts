/** The emulator's benchmark mode counts a Logs Ingestion body's records without parsing it: it must agree with JSON.parse. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countArrayObjects } from './emulator.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('countArrayObjects', () => {
  it('counts the objects of any JSON array of objects, strings with brackets and escapes included', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.string(), fc.jsonValue())), fc.boolean(), (records, pretty) => {
        const text = JSON.stringify(records, null, pretty ? 2 : undefined);
        expect(countArrayObjects(bytes(text))).toBe(records.length);
      }),
    );
  });

  it('refuses what is not an array of objects', () => {
    for (const text of ['{}', '[1]', '[{}, []]', '[{"a": "b"}', '[{"a": "]"}]]', '"[{}]"', '[{"a": "\\"}]'])
      expect(countArrayObjects(bytes(text)), text).toBe(-1);
  });
});

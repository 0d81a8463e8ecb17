import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decode, gzipTrailerLength, inflate, translate, type DecodeTask } from '../../../src/forwarder/pool/decode.js';
import { nativeDeflate } from '../../../src/forwarder/pool/gzip.js';
import { groupEntries, joinPayloads } from '../../../src/forwarder/pool/build.js';
import { decodeWeight } from '../../../src/forwarder/pool/lane.js';

const enc = new TextEncoder();
function task(body: string | Uint8Array, over: Partial<DecodeTask> = {}): DecodeTask {
  return {
    kind: 'decode',
    body: typeof body === 'string' ? enc.encode(body) : body,
    gzip: false,
    maxDecodedBytes: 1_048_576,
    entryMaxBytes: 1_000,
    mode: 'logsIngestion',
    timeGeneratedField: '',
    receivedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}
const text = (u: Uint8Array): string => Buffer.from(u).toString('utf8');

describe('decode', () => {
  it('splits records into entries of whole records within entryMaxBytes, in order, nothing lost', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.nat(), s: fc.string({ maxLength: 200 }) }), { maxLength: 60 }),
        fc.integer({ min: 250, max: 2_000 }),
        (records, max) => {
          const r = decode(task(JSON.stringify(records), { entryMaxBytes: max }));
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.records).toBe(records.length);
          for (const e of r.entries) expect(e.payload.byteLength).toBeLessThanOrEqual(max);
          const back = r.entries.flatMap((e) => JSON.parse(`[${text(e.payload)}]`) as unknown[]);
          expect(back).toEqual(records);
          expect(r.entries.reduce((n, e) => n + e.records, 0)).toBe(records.length);
        },
      ),
    );
  });

  it('refuses what is not a JSON array of objects, and a record larger than one batch', () => {
    expect(decode(task('[{"a":'))).toMatchObject({ ok: false, error: 'badJson' });
    expect(decode(task('{"a":1}'))).toMatchObject({ ok: false, error: 'notArray' });
    expect(decode(task('[1]'))).toMatchObject({ ok: false, error: 'notArray' });
    expect(decode(task('[null]'))).toMatchObject({ ok: false, error: 'notArray' });
    expect(decode(task(JSON.stringify([{ big: 'x'.repeat(2_000) }])))).toMatchObject({ ok: false, error: 'recordTooLarge' });
    expect(decode(task('[]'))).toMatchObject({ ok: true, records: 0, entries: [] });
  });

  it("keeps the client's bytes when an upload fits one entry (no re-serialisation), and still checks every item", () => {
    const body = ' [ {"b":1.50,"a":"\\u00e9"} ,\n{"n":1e3} ] \n';
    const r = decode(task(body, { entryMaxBytes: 1_000 }));
    expect(r).toMatchObject({ ok: true, records: 2 });
    expect(r.ok && text(r.entries[0]?.payload ?? new Uint8Array())).toBe(' {"b":1.50,"a":"\\u00e9"} ,\n{"n":1e3} ');
    expect(decode(task('[{"a":1}, 2]'))).toMatchObject({ ok: false, error: 'notArray' });
    // Translation rewrites records, so it re-serialises them.
    const t = decode(task('[{"TimeGenerated":"2026-01-01T00:00:00Z", "x":1.50}]', { mode: 'translate' }));
    expect(t.ok && text(t.entries[0]?.payload ?? new Uint8Array())).toBe('{"TimeGenerated":"2026-01-01T00:00:00Z","x":1.5}');
  });

  it('the Data Collector API also takes a single object', () => {
    const r = decode(task('{"a":1}', { mode: 'dataCollector' }));
    expect(r.ok && text(r.entries[0]?.payload ?? new Uint8Array())).toBe('{"a":1}');
  });

  it('gunzips within the limit; a bomb and a truncated stream are refused', () => {
    const recs = [{ a: 1 }, { b: 2 }];
    const r = decode(task(gzipSync(JSON.stringify(recs)), { gzip: true }));
    expect(r.ok && JSON.parse(`[${text(r.entries[0]?.payload ?? new Uint8Array())}]`)).toEqual(recs);
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20));
    expect(decode(task(bomb, { gzip: true, maxDecodedBytes: 1_048_576 }))).toMatchObject({ ok: false, error: 'tooLarge' });
    const gz = gzipSync(JSON.stringify(recs));
    expect(decode(task(gz.subarray(0, gz.length - 8), { gzip: true }))).toMatchObject({ ok: false, error: 'badGzip' });
    expect(decode(task('not gzip', { gzip: true }))).toMatchObject({ ok: false, error: 'badGzip' });
    expect(decode(task('x'.repeat(2_000), { maxDecodedBytes: 1_000 }))).toMatchObject({ ok: false, error: 'tooLarge' });
  });

  it.runIf(nativeDeflate !== null)(
    'libdeflate inflates exactly what zlib does, and any other body is refused alike (a bomb and a lying trailer included)',
    () => {
      /** A gzip body, then one of the ways a client or an attacker bends it. */
      const bodies = fc
        .tuple(
          fc.oneof(
            fc.array(fc.record({ id: fc.nat(), s: fc.string({ maxLength: 80 }) }), { maxLength: 200 }).map((r) => enc.encode(JSON.stringify(r))),
            fc.uint8Array({ maxLength: 5_000 }),
            fc.integer({ min: 0, max: 3_000_000 }).map((n) => new Uint8Array(n).fill(0x20)),
          ),
          fc.constantFrom('as is', 'truncated', 'flipped', 'two members', 'trailing byte', 'trailer says less', 'trailer says more'),
          fc.nat(),
        )
        .map(([raw, how, at]) => {
          const gz = new Uint8Array(gzipSync(raw, { level: 1 }));
          const n = gz.byteLength;
          const withSize = (size: number): Uint8Array => {
            const out = gz.slice();
            new DataView(out.buffer).setUint32(n - 4, size >>> 0, true);
            return out;
          };
          switch (how) {
            case 'truncated':
              return gz.subarray(0, at % n);
            case 'flipped': {
              const out = gz.slice();
              out[at % n] = (out[at % n] ?? 0) ^ (1 << (at % 8));
              return out;
            }
            case 'two members':
              return Buffer.concat([gz, gzipSync(raw.subarray(0, at % (raw.byteLength + 1)))]);
            case 'trailing byte':
              return Buffer.concat([gz, Buffer.from([at % 256])]);
            case 'trailer says less':
              return withSize(Math.max(0, raw.byteLength - 1 - (at % 100)));
            case 'trailer says more':
              return withSize(raw.byteLength + 1 + (at % 100));
            default:
              return gz;
          }
        });
      fc.assert(
        fc.property(bodies, fc.constantFrom(1_048_576, 1_000, 1), (body, limit) => {
          const viaNative = inflate(body, limit, true);
          const viaZlib = inflate(body, limit, false);
          if (viaZlib instanceof Uint8Array) {
            expect(viaNative).toBeInstanceOf(Uint8Array);
            expect(Buffer.from(viaNative as Uint8Array).equals(Buffer.from(viaZlib))).toBe(true);
          } else {
            expect(viaNative).toEqual(viaZlib);
          }
        }),
        { numRuns: 300 },
      );
    },
  );

  it('keeps a Logs Ingestion gzip body of at least half a batch as it came (sealed), and only then', () => {
    const recs = Array.from({ length: 400 }, (_, i) => ({ i, msg: `event ${i} from host-${i % 7}` }));
    const json = JSON.stringify(recs);
    const gz = gzipSync(json);
    const seal = { minBytes: json.length - 10, maxBytes: 1_048_576 };
    const big = { gzip: true, entryMaxBytes: 1_048_574, seal };
    const r = decode(task(gz, big));
    expect(r).toMatchObject({ ok: true, records: 400, decodedBytes: json.length });
    expect(r.ok && r.entries).toHaveLength(1);
    expect(r.ok && r.entries[0]?.sealed).toBe(true);
    expect(r.ok && Buffer.from(r.entries[0]?.payload ?? []).equals(gz)).toBe(true);
    expect(gzipTrailerLength(gz)).toBe(json.length);
    const unsealed = (t: DecodeTask): void => {
      const u = decode(t);
      expect(u).toMatchObject({ ok: true, records: 400 });
      expect(u.ok && u.entries.every((e) => e.sealed !== true)).toBe(true);
      expect(u.ok && JSON.parse(`[${u.entries.map((e) => text(e.payload)).join(',')}]`)).toEqual(recs);
    };
    // Smaller than half a batch: batched with others.
    unsealed(task(gz, { ...big, seal: { ...seal, minBytes: json.length + 1 } }));
    // Over the upstream limit, compressed or not.
    unsealed(task(gz, { ...big, seal: { ...seal, maxBytes: json.length - 1 } }));
    // Not one gzip member: the upstream's inflate might not see what was validated here.
    const half = Math.floor(json.length / 2);
    const split = Buffer.concat([gzipSync(json.slice(0, half)), gzipSync(json.slice(half))]);
    unsealed(task(split, { ...big, seal: { ...seal, minBytes: 10 } }));
    // Not gzip, or not the Logs Ingestion API.
    unsealed(task(json, { ...big, gzip: false }));
    const dc = decode(task(gz, { ...big, mode: 'dataCollector' }));
    expect(dc.ok && dc.entries.every((e) => e.sealed !== true)).toBe(true);
    // Invalid content is refused whatever its size.
    const bad = gzipSync(`${json.slice(0, -1)},1]`);
    expect(decode(task(bad, big))).toMatchObject({ ok: false, error: 'notArray' });
  });

  it('weighs a gzip upload by its inflated size (bounded by the limit) when placing it on a lane thread', () => {
    const json = JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ i, s: 'x'.repeat(40) })));
    const gz = gzipSync(json);
    expect(decodeWeight(task(json))).toBe(json.length);
    expect(decodeWeight(task(gz, { gzip: true }))).toBe(json.length);
    expect(decodeWeight(task(gz, { gzip: true, maxDecodedBytes: 1_000 }))).toBe(Math.max(gz.length, 1_000));
    // A trailer that lies (or a bomb's huge ISIZE) is capped; a tiny body weighs its own size.
    expect(decodeWeight(task(Buffer.concat([gz.subarray(0, -4), Buffer.from([0xff, 0xff, 0xff, 0xff])]), { gzip: true }))).toBe(1_048_576);
    expect(decodeWeight(task('abc', { gzip: true }))).toBe(3);
  });

  it('translation sets TimeGenerated from time-generated-field, else keeps one, else the receive time', () => {
    expect(translate({ When: '2026-02-03T04:05:06Z', x: 1 }, 'When', 'R')).toEqual({
      When: '2026-02-03T04:05:06Z',
      x: 1,
      TimeGenerated: '2026-02-03T04:05:06Z',
    });
    expect(translate({ When: 'not a date' }, 'When', 'R')).toEqual({ When: 'not a date', TimeGenerated: 'R' });
    expect(translate({ TimeGenerated: 'T' }, '', 'R')).toEqual({ TimeGenerated: 'T' });
    expect(translate({ a: 1 }, '', 'R')).toEqual({ a: 1, TimeGenerated: 'R' });
  });
});

describe('batch bodies', () => {
  it('groups entries so each "[...]" body fits, keeping order and every entry', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { maxLength: 80 }), fc.integer({ min: 502, max: 3_000 }), (sizes, max) => {
        const groups = groupEntries(sizes, max);
        let next = 0;
        for (const [start, end] of groups) {
          expect(start).toBe(next);
          expect(end).toBeGreaterThan(start);
          const body = 2 + (end - start - 1) + sizes.slice(start, end).reduce((a, b) => a + b, 0);
          expect(body).toBeLessThanOrEqual(max);
          next = end;
        }
        expect(next).toBe(sizes.length);
      }),
    );
  });

  it('joins payloads into one JSON array in a buffer of its own', () => {
    const body = joinPayloads([enc.encode('{"a":1}'), enc.encode('{"b":2},{"c":3}')]);
    expect(JSON.parse(text(body))).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
    expect(body.byteOffset).toBe(0);
    expect(body.buffer.byteLength).toBe(body.byteLength);
  });
});

// The decode lane (src/forwarder/pool/lane.ts): uploads decoded on its own threads must come back
// exactly as the inline decode would answer, for good and bad input, and a lane that stops must
// fail what it held rather than leave an upload unanswered. Real worker threads (needs the build).
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { decode, type DecodeResult, type DecodeTask } from '../../src/forwarder/pool/decode.js';
import { DecodeLane } from '../../src/forwarder/pool/lane.js';

/** A lane closed after the test. */
function newLane(size: number): DecodeLane {
  const l = new DecodeLane(size);
  lane = l;
  return l;
}

/** An upload body in an ArrayBuffer of its own, as readBody hands it over. */
function own(bytes: Uint8Array): Uint8Array {
  const u = new Uint8Array(new ArrayBuffer(bytes.byteLength));
  u.set(bytes);
  return u;
}

function task(body: string | Uint8Array, over: Partial<DecodeTask> = {}): DecodeTask {
  return {
    kind: 'decode',
    body: own(typeof body === 'string' ? Buffer.from(body) : body),
    gzip: false,
    maxDecodedBytes: 64 * 1024,
    entryMaxBytes: 4_000,
    mode: 'logsIngestion',
    timeGeneratedField: '',
    receivedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

/** Comparable form: entry payloads as text. */
function plain(r: DecodeResult): unknown {
  return r.ok ? { ...r, entries: r.entries.map((e) => ({ records: e.records, payload: Buffer.from(e.payload).toString('utf8') })) } : r;
}

let lane: DecodeLane | null = null;

const records = (n: number, from = 0): Array<Record<string, unknown>> =>
  Array.from({ length: n }, (_, i) => ({ id: from + i, msg: `event ${from + i} ${'x'.repeat(300)}`, TimeGenerated: '2026-01-01T00:00:00Z' }));

afterEach(async () => {
  await lane?.close();
  lane = null;
});

describe('decode lane', () => {
  it('answers every upload as the inline decode does: good, split, translated, gzip, and bad input', async () => {
    const l = newLane(2);
    const big = JSON.stringify(records(40));
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20));
    const cases: DecodeTask[] = [
      task(JSON.stringify(records(5))),
      task(big), // over entryMaxBytes: split into several entries
      task(JSON.stringify(records(3).map(({ TimeGenerated: _, ...r }) => ({ ...r, when: '2026-02-02T00:00:00Z' }))), {
        mode: 'translate',
        timeGeneratedField: 'when',
      }),
      task(gzipSync(Buffer.from(big)), { gzip: true }),
      task('[{"a":1},'), // truncated JSON
      task('{"a":1}'), // not an array
      task('[1,2]'), // not objects
      task(Buffer.from(big).subarray(0, 100), { gzip: true }), // not gzip
      task(bomb, { gzip: true }), // inflates past maxDecodedBytes: stopped, not inflated whole
    ];
    // Expected answers from the same tasks decoded inline (on copies: the lane moves the bodies).
    const expected = cases.map((t) => plain(decode({ ...t, body: own(t.body) })));
    const got = await Promise.all(cases.map((t) => l.decode(t)));
    expect(got.map(plain)).toEqual(expected);
    const answers = got.map((r) => (r.ok ? 'ok' : r.error));
    expect(answers).toEqual(['ok', 'ok', 'ok', 'ok', 'badJson', 'notArray', 'notArray', 'badGzip', 'tooLarge']);
  });

  it('keeps many concurrent uploads apart: each answer belongs to its own upload', async () => {
    const l = newLane(2);
    const n = 200;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => l.decode(task(JSON.stringify(records(2, i * 2))))));
    results.forEach((r, i) => {
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const back = r.entries.flatMap((e) => JSON.parse(`[${Buffer.from(e.payload).toString('utf8')}]`) as Array<{ id: number }>);
      expect(back.map((x) => x.id)).toEqual([i * 2, i * 2 + 1]);
    });
  });

  it('moves the body to the lane thread instead of copying it', async () => {
    const l = newLane(1);
    const t = task(JSON.stringify(records(3)));
    const body = t.body;
    const r = await l.decode(t);
    expect(r.ok && r.records).toBe(3);
    expect(body.byteLength).toBe(0); // detached: the bytes went to the lane thread (and came back as the entry's)
  });

  it('closing it fails the decodes it still held (the upload is answered, never left hanging); later uploads decode inline', async () => {
    const l = newLane(1);
    const many = Array.from({ length: 50 }, () => l.decode(task(JSON.stringify(records(40)))));
    const settled = Promise.allSettled(many);
    await l.close();
    const outcomes = await settled;
    for (const o of outcomes) {
      if (o.status === 'rejected') expect(String(o.reason)).toMatch(/lane/);
      else expect(o.value.ok).toBe(true);
    }
    const after = await l.decode(task(JSON.stringify(records(2))));
    expect(after.ok && after.records).toBe(2);
  });
});

import { constants } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Spool } from '../../../src/forwarder/spool/index.js';
import { deflateRun } from '../../../src/forwarder/pool/gzip.js';
import { inflateRun } from '../../../src/forwarder/pool/stitch.js';
import { Events } from '../../../src/log/events.js';
import { codeOf } from '../../helpers/errors.js';
import { captureLogger, payload, tempDir, text } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function fresh(opts: { maxBytes?: number; segmentBytes?: number; fsync?: 'always' | 'interval' | 'never' } = {}) {
  const t = await tempDir('spool');
  cleanups.push(t.cleanup);
  const log = captureLogger();
  const base = { dir: t.dir, maxBytes: opts.maxBytes ?? 64 * 1024 * 1024, fsync: opts.fsync ?? 'always', logger: log.logger } as const;
  const spoolOpts = opts.segmentBytes === undefined ? base : { ...base, segmentBytes: opts.segmentBytes };
  const spool = await Spool.open(spoolOpts);
  cleanups.push(() => spool.close());
  return {
    spool,
    dir: t.dir,
    log,
    reopen: async () => {
      const s = await Spool.open(spoolOpts);
      cleanups.push(() => s.close());
      return s;
    },
  };
}

describe('spool basics', () => {
  it('appends, takes in FIFO order per stream, releases to the head, acks', async () => {
    const { spool } = await fresh();
    const a = await spool.append([
      { stream: 'A', records: 1, payload: payload('a1') },
      { stream: 'B', records: 2, payload: payload('b1') },
      { stream: 'A', records: 3, payload: payload('a2') },
    ]);
    expect(a.map((e) => e.stream)).toEqual(['A', 'B', 'A']);
    expect(spool.streams().sort()).toEqual(['A', 'B']);
    expect(spool.pending('A')).toMatchObject({ entries: 2, bytes: 4 });
    const t1 = await spool.take('A', 1);
    expect(t1.map((e) => text(e.payload))).toEqual(['a1']); // at least one even over maxBytes
    const t2 = await spool.take('A', 1000);
    expect(t2.map((e) => text(e.payload))).toEqual(['a2']);
    expect(await spool.take('A', 1000)).toEqual([]);
    spool.release(t1.map((e) => e.id));
    const t3 = await spool.take('A', 1000);
    expect(t3.map((e) => [text(e.payload), e.records])).toEqual([['a1', 1]]);
    await spool.ack([...t2, ...t3].map((e) => e.id));
    expect(spool.pending('A').entries).toBe(0);
    expect(spool.streams()).toEqual(['B']);
  });

  it('a sealed entry is taken alone, ends the take before it, and stays sealed across a restart', async () => {
    const { spool, reopen } = await fresh();
    await spool.append([
      { stream: 'A', records: 1, payload: payload('a1') },
      { stream: 'A', records: 1, payload: payload('a2') },
      { stream: 'A', records: 5, payload: payload('S1'), sealed: true },
      { stream: 'A', records: 6, payload: payload('S2'), sealed: true },
      { stream: 'A', records: 1, payload: payload('a3') },
    ]);
    expect(spool.pending('A')).toMatchObject({ entries: 5, sealed: 2 });
    const takes: Array<Array<[string, boolean]>> = [];
    for (;;) {
      const t = await spool.take('A', 1e6);
      if (t.length === 0) break;
      takes.push(t.map((e) => [text(e.payload), e.sealed === true]));
    }
    expect(takes).toEqual([
      [
        ['a1', false],
        ['a2', false],
      ],
      [['S1', true]],
      [['S2', true]],
      [['a3', false]],
    ]);
    await spool.close();
    const again = await reopen();
    // Replayed sealed entries are held until checked again; the entries before them flow.
    expect(again.pending('A')).toMatchObject({ entries: 5, sealed: 2, held: 2 });
    const first = await again.take('A', 1e6);
    expect(first.map((e) => e.sealed === true)).toEqual([false, false]);
    expect(await again.take('A', 1e6)).toEqual([]);
    const checked: string[] = [];
    const verdict = await again.verifyHeld(async (p) => {
      checked.push(text(p));
      return text(p) === 'S1' ? 5 : 6;
    });
    expect(verdict).toEqual({ kept: 2, dropped: 0, failed: 0 });
    expect(checked.sort()).toEqual(['S1', 'S2']);
    const sealed = await again.take('A', 1e6);
    expect(sealed.map((e) => [text(e.payload), e.records, e.sealed])).toEqual([['S1', 5, true]]);
    await again.ack([...first, ...sealed].map((e) => e.id));
    expect(again.pending('A')).toMatchObject({ entries: 2, sealed: 1 });
  });

  it('a held entry is not handed out, nor anything behind it, until settled; dropped, it is gone for good', async () => {
    const { spool, reopen } = await fresh();
    const woken: string[] = [];
    spool.onAppend((s) => woken.push(s));
    const [h1] = await spool.append([{ stream: 'A', records: 0, payload: payload('H1'), sealed: true, held: true }]);
    await spool.append([{ stream: 'A', records: 1, payload: payload('a1') }]);
    const [h2] = await spool.append([{ stream: 'A', records: 0, payload: payload('H2'), sealed: true, held: true }]);
    if (h1 === undefined || h2 === undefined) throw new Error('no entries');
    expect(spool.pending('A')).toMatchObject({ entries: 3, held: 2 });
    expect(await spool.take('A', 1e6)).toEqual([]);
    woken.length = 0;
    await spool.settle(h1.id, 7);
    expect(woken).toEqual(['A']);
    const t1 = await spool.take('A', 1e6);
    expect(t1.map((e) => [text(e.payload), e.records])).toEqual([['H1', 7]]);
    const t2 = await spool.take('A', 1e6);
    expect(t2.map((e) => text(e.payload))).toEqual(['a1']);
    expect(await spool.take('A', 1e6)).toEqual([]);
    await spool.settle(h2.id, null);
    expect(spool.pending('A')).toMatchObject({ held: 0 });
    await spool.ack([...t1, ...t2].map((e) => e.id));
    expect(spool.pending('A').entries).toBe(0);
    await spool.close();
    // The dropped entry's ack record is on disk: it does not come back.
    const again = await reopen();
    expect(again.pending('A').entries).toBe(0);
    await again.close();
  });

  it('on replay, a sealed entry that fails its check is dropped; one whose check throws stays held', async () => {
    const { spool, reopen } = await fresh();
    await spool.append([
      { stream: 'A', records: 3, payload: payload('good'), sealed: true },
      { stream: 'A', records: 0, payload: payload('bad'), sealed: true },
      { stream: 'A', records: 0, payload: payload('flaky'), sealed: true },
      { stream: 'A', records: 1, payload: payload('a1') },
    ]);
    await spool.close();
    const again = await reopen();
    const verdict = await again.verifyHeld(async (p) => {
      if (text(p) === 'bad') return null;
      if (text(p) === 'flaky') throw new Error('pool gone');
      return 3;
    });
    expect(verdict).toEqual({ kept: 1, dropped: 1, failed: 1 });
    const t = await again.take('A', 1e6);
    expect(t.map((e) => [text(e.payload), e.records])).toEqual([['good', 3]]);
    // 'flaky' is still held, and a1 (appended after it) waits behind it.
    expect(await again.take('A', 1e6)).toEqual([]);
    expect(again.pending('A')).toMatchObject({ entries: 3, held: 1 });
    await again.close();
  });

  it('a released entry goes out before newer untaken ones (retry keeps per-stream order)', async () => {
    const { spool } = await fresh();
    await spool.append(['1', '2', '3', '4'].map((p) => ({ stream: 'A', records: 1, payload: payload(p) })));
    const first = await spool.take('A', 1e6, 1);
    const second = await spool.take('A', 1e6, 1);
    spool.release(first.map((e) => e.id));
    expect((await spool.take('A', 1e6, 2)).map((e) => text(e.payload))).toEqual(['1', '3']);
    spool.release(second.map((e) => e.id));
    expect((await spool.take('A', 1e6)).map((e) => text(e.payload))).toEqual(['2', '4']);
  });

  it('reading back entries that are not taken is refused as a caller bug (PCL_ERR_SPOOL_NOT_TAKEN, logged), not as a disk error', async () => {
    const { spool, log } = await fresh();
    await spool.append([{ stream: 'A', records: 1, payload: payload('a1') }]);
    const refs = spool.takeRefs('A', 1e6);
    spool.release(refs.map((r) => r.id));
    expect(await codeOf(spool.read(refs))).toBe('PCL_ERR_SPOOL_NOT_TAKEN');
    expect(log.withEvent(Events.INTERNAL_ERROR)).toHaveLength(1);
    expect(spool.stats().healthy).toBe(true);
    // Taken again, the same entry reads back whole.
    const again = spool.takeRefs('A', 1e6);
    expect((await spool.read(again)).map((e) => text(e.payload))).toEqual(['a1']);
    await spool.ack(again.map((r) => r.id));
    expect(await codeOf(spool.read(again))).toBe('PCL_ERR_SPOOL_NOT_TAKEN');
  });
  it('a deflate run is batched by the JSON length it stands for, and stays a run across a restart', async () => {
    const { spool, reopen } = await fresh();
    const json = Buffer.from(Array.from({ length: 200 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(40)}"}`).join(','));
    const run = Buffer.from(deflateRun(json, 1));
    expect(run.length).toBeLessThan(json.length / 4);
    await spool.append([
      { stream: 'A', records: 200, payload: run, deflated: true },
      { stream: 'A', records: 1, payload: payload('{"n":"plain"}') },
    ]);
    // A budget that the compressed bytes would fit in twice over, but not the JSON: one entry.
    const one = spool.takeRefs('A', json.length + 5);
    expect(one.map((r) => [r.deflated === true, r.rawLength, r.length])).toEqual([[true, json.length, run.length]]);
    spool.release(one.map((r) => r.id));
    await spool.close();
    const again = await reopen();
    const refs = again.takeRefs('A', 1e6);
    expect(refs.map((r) => [r.deflated === true, r.rawLength])).toEqual([
      [true, json.length],
      [false, 13],
    ]);
    const read = await again.read(refs);
    expect(read[0]?.deflated).toBe(true);
    expect(inflateRun(read[0]?.payload ?? new Uint8Array(0)).equals(json)).toBe(true);
    expect(text(read[1]?.payload ?? new Uint8Array(0))).toBe('{"n":"plain"}');
  });

  it('a deflated entry without its 8-byte prefix, or one also sealed, is refused (PCL_ERR_SPOOL_INPUT), nothing written', async () => {
    const { spool } = await fresh();
    expect(await codeOf(spool.append([{ stream: 'A', records: 1, payload: Buffer.alloc(7), deflated: true }]))).toBe('PCL_ERR_SPOOL_INPUT');
    expect(
      await codeOf(spool.append([{ stream: 'A', records: 1, payload: Buffer.from(deflateRun(Buffer.from('{}'), 1)), deflated: true, sealed: true }])),
    ).toBe('PCL_ERR_SPOOL_INPUT');
    expect(spool.pending().entries).toBe(0);
  });

  it('a clean restart replays unacked entries only, in order', async () => {
    const { spool, reopen } = await fresh({ segmentBytes: 200 });
    const es = await spool.append(Array.from({ length: 10 }, (_, i) => ({ stream: 'S', records: 1, payload: payload(`rec-${i}`.repeat(5)) })));
    await spool.ack([es[0]!.id, es[3]!.id, es[9]!.id]);
    await spool.close();
    const again = await reopen();
    expect(again.recovery).toMatchObject({ entries: 7, records: 7, tornTails: 0, corruptFrames: 0, lostRecords: 0 });
    const t = await again.take('S', 1e9);
    expect(t.map((e) => text(e.payload).slice(0, 5))).toEqual([1, 2, 4, 5, 6, 7, 8].map((i) => `rec-${i}`));
    expect(t.map((e) => e.id)).toEqual(es.filter((_, i) => ![0, 3, 9].includes(i)).map((e) => e.id));
  });

  it('concurrent appends share fdatasyncs (group commit) and roll over segments', async () => {
    const { spool, dir } = await fresh({ segmentBytes: 64 * 1024 });
    const before = spool.stats().fsyncs;
    const n = 200;
    await Promise.all(Array.from({ length: n }, (_, i) => spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(1024, i) }])));
    const used = spool.stats().fsyncs - before;
    expect(used).toBeLessThan(n / 2);
    expect((await readdir(dir)).filter((f) => f.endsWith('.log')).length).toBeGreaterThan(1);
    const t = await spool.take('S', 1e9);
    expect(t.map((e) => e.payload[0])).toEqual(Array.from({ length: n }, (_, i) => i % 256));
  });

  it("'always' opens segments and ack files O_DSYNC, so a write is its fdatasync; 'interval' and 'never' do not", async () => {
    /** The open flags of this process's descriptor on the spool's active segment file (Linux /proc). */
    const segmentFlags = async (dir: string, kind: '.log' | '.ack' = '.log'): Promise<number> => {
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (!target.startsWith(join(dir, 'seg-')) || !target.endsWith(kind)) continue;
        const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
        return parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? 'x', 8);
      }
      throw new Error(`no open segment under ${dir}`);
    };
    for (const [fsync, dsync] of [
      ['always', true],
      ['interval', false],
      ['never', false],
    ] as const) {
      const { spool, dir } = await fresh({ fsync });
      await spool.append([{ stream: 'S', records: 1, payload: payload('x') }]);
      expect((await segmentFlags(dir)) & constants.O_DSYNC, fsync).toBe(dsync ? constants.O_DSYNC : 0);
      // An ack record (the segment keeps a live entry, so it is not simply deleted): the same for the ack file.
      const [first] = await spool.append([{ stream: 'S', records: 1, payload: payload('y') }]);
      await spool.ack([first?.id ?? -1]);
      expect((await segmentFlags(dir, '.ack')) & constants.O_DSYNC, `${fsync} ack`).toBe(dsync ? constants.O_DSYNC : 0);
    }
  });

  it('deletes segments whose entries are all acked', async () => {
    const { spool, dir } = await fresh({ segmentBytes: 4096 });
    for (let i = 0; i < 10; i++) await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(1000, i) }]);
    expect(spool.stats().segments).toBeGreaterThan(2);
    const t = await spool.take('S', 1e9);
    await spool.ack(t.map((e) => e.id));
    expect(spool.stats()).toMatchObject({ segments: 0, bytes: 0, pendingEntries: 0 });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a full spool refuses with PCL_ERR_SPOOL_FULL and writes nothing; acks free the space', async () => {
    const { spool, log } = await fresh({ maxBytes: 10_000, segmentBytes: 2048 });
    const ids: number[] = [];
    for (let i = 0; i < 9; i++) ids.push(...(await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(1000) }])).map((e) => e.id));
    const bytes = spool.stats().bytes;
    expect(await codeOf(spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(1000) }]))).toBe('PCL_ERR_SPOOL_FULL');
    expect(spool.stats()).toMatchObject({ bytes, pendingEntries: 9, refusedFull: 1 });
    expect(log.withEvent(623).length).toBe(1);
    await spool.ack(ids);
    await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(1000) }]);
    expect(spool.pending().entries).toBe(1);
  });

  it('interval and never modes resolve and replay after a clean close', async () => {
    for (const fsync of ['interval', 'never'] as const) {
      const { spool, reopen } = await fresh({ fsync });
      await spool.append([{ stream: 'S', records: 4, payload: payload('x') }]);
      await spool.close();
      const again = await reopen();
      expect(again.recovery.records).toBe(4);
    }
  });

  it("'interval' resolves after the write and fdatasyncs on its timer", async () => {
    const t = await tempDir('interval');
    cleanups.push(t.cleanup);
    const spool = await Spool.open({ dir: t.dir, maxBytes: 1e6, fsync: 'interval', fsyncIntervalMs: 20, logger: captureLogger().logger });
    cleanups.push(() => spool.close());
    const before = spool.stats().fsyncs;
    await spool.append([{ stream: 'S', records: 1, payload: payload('x') }]);
    await vi.waitFor(() => expect(spool.stats().fsyncs).toBeGreaterThan(before), { timeout: 5000, interval: 10 });
  });

  it('onAppend wakes listeners per stream once the entry is spooled', async () => {
    const { spool } = await fresh();
    const seen: string[] = [];
    spool.onAppend((s) => seen.push(s));
    await spool.append([
      { stream: 'A', records: 1, payload: payload('1') },
      { stream: 'A', records: 1, payload: payload('2') },
    ]);
    expect(seen).toEqual(['A']);
  });
});

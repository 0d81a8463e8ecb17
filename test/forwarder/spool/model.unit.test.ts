/**
 * Model-based test of the spool: random sequences of append, take, release, ack, crash (the
 * object dropped without close, optionally with the last append torn at a random byte) and clean
 * restart, checked against a plain in-memory model. Replay a failure with FC_SEED=<seed> (and
 * FC_PATH=<path> to jump straight to the shrunk case); both are printed on failure.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Spool, type FsyncMode } from '../../../src/forwarder/spool/index.js';
import { isPortcullisError } from '../../../src/util/errors.js';
import { captureLogger, tempDir, text } from './helpers.js';

const STREAMS = ['a', 'b'] as const;

interface ModelEntry {
  id: number;
  stream: string;
  records: number;
  payload: string;
}

interface Model {
  /** Appended (resolved) and not acked. */
  pending: Map<number, ModelEntry>;
  taken: Set<number>;
  acked: Set<number>;
  counter: number;
}

interface Real {
  spool: Spool;
  open: () => Promise<Spool>;
  dir: string;
  /** Spools dropped by a simulated crash: their fds are closed at the end of the run. */
  dropped: Spool[];
}

function expectedTake(m: Model, stream: string, maxBytes: number, maxEntries: number): ModelEntry[] {
  const out: ModelEntry[] = [];
  let bytes = 0;
  const queued = [...m.pending.values()].filter((e) => e.stream === stream && !m.taken.has(e.id)).sort((x, y) => x.id - y.id);
  for (const e of queued) {
    if (out.length >= maxEntries) break;
    const len = Buffer.byteLength(e.payload);
    if (out.length > 0 && bytes + len > maxBytes) break;
    bytes += len;
    out.push(e);
  }
  return out;
}

/** Picks about `fraction` of `ids` deterministically. */
function pick(ids: number[], fraction: number): number[] {
  return ids.filter((_, i) => ((i * 7919) % 100) / 100 < fraction);
}

/**
 * After a (re)open: everything pending in the model is back (payload intact, in order), nothing
 * acked is, and the only other entries allowed are `maybe` (the torn append, never acknowledged).
 * Everything is left untaken, as after a restart.
 */
async function checkReplay(m: Model, r: Real, maybe: Map<number, ModelEntry>, kept: number | null = null): Promise<void> {
  m.taken.clear();
  let missingMaybeRecords = 0;
  const seenMaybe = new Set<number>();
  for (const stream of STREAMS) {
    const got = await r.spool.take(stream, Number.MAX_SAFE_INTEGER);
    const ids = got.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    for (const e of got) {
      expect(m.acked.has(e.id), `acked entry ${e.id} came back`).toBe(false);
      const want = m.pending.get(e.id) ?? maybe.get(e.id);
      expect(want, `entry ${e.id} was never appended`).toBeDefined();
      expect({ stream: e.stream, records: e.records, payload: text(e.payload) }).toEqual({
        stream: want?.stream,
        records: want?.records,
        payload: want?.payload,
      });
      if (maybe.has(e.id)) seenMaybe.add(e.id);
    }
    const wanted = [...m.pending.values()].filter((e) => e.stream === stream).map((e) => e.id);
    expect(ids.filter((id) => !maybe.has(id))).toEqual(wanted.sort((x, y) => x - y));
    r.spool.release(ids);
  }
  for (const [id, e] of maybe) {
    if (seenMaybe.has(id)) m.pending.set(id, e);
    else missingMaybeRecords += e.records;
  }
  expect(r.spool.recovery.corruptFrames).toBe(0);
  // The torn frame: gone when cut at all; counted exactly when its 40-byte header survived.
  const rec = r.spool.recovery;
  if (kept === null || seenMaybe.size > 0) {
    expect([rec.tornTails, rec.lostRecords, rec.lostBytes]).toEqual([0, 0, 0]);
  } else {
    expect(rec.tornTails).toBe(kept > 0 ? 1 : 0);
    expect(rec.lostBytes).toBe(kept);
    expect(rec.lostRecords).toBe(kept >= 40 ? missingMaybeRecords : 0);
  }
  expect(r.spool.pending().entries).toBe(m.pending.size);
}

class AppendCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly items: Array<{ stream: string; size: number; records: number }>) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const items = this.items.map((it) => {
      const tag = `${it.stream}#${m.counter++}:`;
      return { stream: it.stream, records: it.records, payload: tag + 'x'.repeat(it.size) };
    });
    try {
      const entries = await r.spool.append(items.map((it) => ({ ...it, payload: Buffer.from(it.payload) })));
      expect(entries).toHaveLength(items.length);
      entries.forEach((e, i) => {
        const it = items[i];
        if (it !== undefined) m.pending.set(e.id, { id: e.id, ...it });
      });
    } catch (err) {
      // Full: nothing was written (checked on the next replay: those entries must not appear).
      if (!isPortcullisError(err) || err.code !== 'PCL_ERR_SPOOL_FULL') throw err;
    }
  }
  toString = () => `append(${JSON.stringify(this.items)})`;
}

class TakeCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly stream: string,
    readonly maxBytes: number,
    readonly maxEntries: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const want = expectedTake(m, this.stream, this.maxBytes, this.maxEntries);
    const got = await r.spool.take(this.stream, this.maxBytes, this.maxEntries);
    expect(got.map((e) => [e.id, text(e.payload), e.records])).toEqual(want.map((e) => [e.id, e.payload, e.records]));
    for (const e of want) m.taken.add(e.id);
    const inStream = [...m.pending.values()].filter((e) => e.stream === this.stream).length;
    expect(r.spool.pending(this.stream).entries).toBe(inStream);
  }
  toString = () => `take(${this.stream}, ${this.maxBytes}, ${this.maxEntries})`;
}

class ReleaseCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly fraction: number) {}
  check = (m: Readonly<Model>) => m.taken.size > 0;
  async run(m: Model, r: Real): Promise<void> {
    const ids = pick([...m.taken], this.fraction);
    r.spool.release(ids);
    for (const id of ids) m.taken.delete(id);
  }
  toString = () => `release(${this.fraction})`;
}

class AckCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly fraction: number,
    readonly onlyTaken: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.pending.size > 0;
  async run(m: Model, r: Real): Promise<void> {
    const pool = this.onlyTaken ? [...m.taken] : [...m.pending.keys()];
    const ids = pick(pool, this.fraction);
    await r.spool.ack(ids);
    for (const id of ids) {
      m.pending.delete(id);
      m.taken.delete(id);
      m.acked.add(id);
    }
  }
  toString = () => `ack(${this.fraction}, ${this.onlyTaken ? 'taken' : 'any'})`;
}

/** The process dies: no close(). With `torn`, one more append was in flight and only part of it reached the file. */
class CrashCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly torn: { stream: string; size: number; records: number; cut: number } | null) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const maybe = new Map<number, ModelEntry>();
    let kept: number | null = null;
    if (this.torn !== null) {
      const before = await segmentSizes(r.dir);
      const payload = `torn#${m.counter++}:` + 'y'.repeat(this.torn.size);
      let appended: { id: number } | undefined;
      try {
        [appended] = await r.spool.append([{ stream: this.torn.stream, records: this.torn.records, payload: Buffer.from(payload) }]);
      } catch (err) {
        if (!isPortcullisError(err) || err.code !== 'PCL_ERR_SPOOL_FULL') throw err;
      }
      if (appended !== undefined) {
        maybe.set(appended.id, { id: appended.id, stream: this.torn.stream, records: this.torn.records, payload });
        // The write of that last append is cut at a random byte (it never resolved to a client).
        const after = await segmentSizes(r.dir);
        const last = [...after.keys()].sort().at(-1);
        if (last !== undefined) {
          const from = before.get(last) ?? 0;
          const to = after.get(last) ?? 0;
          const fh = await open(join(r.dir, last), 'r+');
          kept = Math.floor(this.torn.cut * (to - from));
          await fh.truncate(from + kept);
          await fh.close();
        }
      }
    }
    r.dropped.push(r.spool);
    r.spool = await r.open();
    await checkReplay(m, r, maybe, kept);
  }
  toString = () => `crash(${JSON.stringify(this.torn)})`;
}

class RestartCmd implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.spool.close();
    r.spool = await r.open();
    await checkReplay(m, r, new Map());
  }
  toString = () => 'restart';
}

async function segmentSizes(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const f of await readdir(dir)) if (f.endsWith('.log')) out.set(f, (await stat(join(dir, f))).size);
  return out;
}

const stream = fc.constantFrom(...STREAMS);
// Uniform in [0, 1] (fc.double leans hard towards tiny values, which would never cut a torn write).
const fraction = fc.integer({ min: 0, max: 1000 }).map((x) => x / 1000);
const appendCmd = fc
  .array(fc.record({ stream, size: fc.integer({ min: 0, max: 600 }), records: fc.integer({ min: 1, max: 9 }) }), { minLength: 1, maxLength: 4 })
  .map((items) => new AppendCmd(items));
const takeCmd = fc.tuple(stream, fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 4 })).map(([s, b, n]) => new TakeCmd(s, b, n));
// Appends and takes weighted up (listed twice) so queues are deep enough for take/release order to matter.
const commands = [
  appendCmd,
  appendCmd,
  takeCmd,
  takeCmd,
  fraction.map((f) => new ReleaseCmd(f)),
  fc.tuple(fraction, fc.boolean()).map(([f, t]) => new AckCmd(f, t)),
  fc
    .option(fc.record({ stream, size: fc.integer({ min: 0, max: 600 }), records: fc.integer({ min: 1, max: 9 }), cut: fraction }), { freq: 2 })
    .map((t) => new CrashCmd(t)),
  fc.constant(new RestartCmd()),
];

describe('spool model', () => {
  it('agrees with an in-memory model across appends, takes, releases, acks, crashes and restarts', async () => {
    const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : Date.now() % 2 ** 31;
    const path = process.env.FC_PATH;
    await fc
      .assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), fc.constantFrom<FsyncMode>('always', 'interval', 'never'), async (cmds, fsync) => {
          const t = await tempDir('model');
          // Small segments and a small bound so rollover, segment deletion and "full" all happen.
          const opts = { dir: t.dir, maxBytes: 4 * 1024, segmentBytes: 1024, fsync, fsyncIntervalMs: 5, logger: captureLogger().logger };
          const real: Real = { spool: await Spool.open(opts), open: () => Spool.open(opts), dir: t.dir, dropped: [] };
          try {
            await fc.asyncModelRun(() => ({ model: { pending: new Map(), taken: new Set<number>(), acked: new Set<number>(), counter: 0 }, real }), cmds);
          } finally {
            await real.spool.close();
            for (const d of real.dropped) await d.close();
            await t.cleanup();
          }
        }),
        { numRuns: 100, seed, ...(path !== undefined ? { path } : {}) },
      )
      .catch((err: unknown) => {
        console.error(
          `spool model test failed: replay with FC_SEED=${seed}${path !== undefined ? ` FC_PATH=${path}` : ''} (fast-check's message has the shrunk path)`,
        );
        throw err;
      });
  });
});

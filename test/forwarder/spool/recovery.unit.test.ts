import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../../../src/forwarder/spool/index.js';
import { Events } from '../../../src/log/events.js';
import { captureLogger, tempDir, text } from './helpers.js';

// Stream "S" (1 byte) + 100-byte payload + 40-byte header.
const FRAME = 141;
const RECORDS = [5, 7, 11];

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A closed spool holding three entries (one frame each) in one segment; returns the segment path. */
async function threeEntries(): Promise<{ dir: string; segment: string }> {
  const t = await tempDir('recovery');
  cleanups.push(t.cleanup);
  const spool = await Spool.open({ dir: t.dir, maxBytes: 1e6, fsync: 'always', logger: captureLogger().logger });
  for (let i = 0; i < 3; i++) await spool.append([{ stream: 'S', records: RECORDS[i] ?? 0, payload: Buffer.alloc(100, 65 + i) }]);
  await spool.close();
  const logs = (await readdir(t.dir)).filter((f) => f.endsWith('.log'));
  expect(logs).toHaveLength(1);
  return { dir: t.dir, segment: join(t.dir, logs[0] ?? '') };
}

async function reopen(dir: string) {
  const log = captureLogger();
  const spool = await Spool.open({ dir, maxBytes: 1e6, fsync: 'always', logger: log.logger });
  cleanups.push(() => spool.close());
  const entries = await spool.take('S', 1e9);
  return { spool, log, letters: entries.map((e) => text(e.payload)[0]) };
}

async function truncateTo(path: string, size: number) {
  const fh = await open(path, 'r+');
  await fh.truncate(size);
  await fh.close();
}

async function flipByte(path: string, offset: number) {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, offset);
  b[0] = (b[0] ?? 0) ^ 0x5a;
  await fh.write(b, 0, 1, offset);
  await fh.close();
}

describe('spool replay: torn tail', () => {
  it('a segment cut mid-record: the cut record is counted lost exactly, logged, cut off; the rest recovered', async () => {
    const { dir, segment } = await threeEntries();
    await truncateTo(segment, 2 * FRAME + 90); // header of the 3rd frame intact, payload cut
    const { spool, log, letters } = await reopen(dir);
    expect(letters).toEqual(['A', 'B']);
    expect(spool.recovery).toMatchObject({ entries: 2, records: 12, tornTails: 1, corruptFrames: 0, lostRecords: 11, lostBytes: 90 });
    const torn = log.withEvent(Events.SPOOL_TORN_TAIL);
    expect(torn).toHaveLength(1);
    expect(torn[0]).toMatchObject({ lostRecords: 11, recordsExact: true, bytes: 90 });
    expect(log.withEvent(Events.SPOOL_RECOVERED)[0]).toMatchObject({ tornTails: 1, lostRecords: 11 });
    expect((await stat(segment)).size).toBe(2 * FRAME); // cut back to the last whole frame
    // Appends go on, and the next replay finds nothing torn.
    await spool.append([{ stream: 'S', records: 1, payload: Buffer.from('D') }]);
    await spool.close();
    const again = await reopen(dir);
    expect(again.letters).toEqual(['A', 'B', 'D']);
    expect(again.spool.recovery).toMatchObject({ tornTails: 0, lostRecords: 0 });
  });

  it('a cut inside the header: bytes counted, records reported as not exact', async () => {
    const { dir, segment } = await threeEntries();
    await truncateTo(segment, 2 * FRAME + 20);
    const { spool, log, letters } = await reopen(dir);
    expect(letters).toEqual(['A', 'B']);
    expect(spool.recovery).toMatchObject({ tornTails: 1, lostRecords: 0, lostBytes: 20 });
    expect(log.withEvent(Events.SPOOL_TORN_TAIL)[0]).toMatchObject({ recordsExact: false });
  });

  it('a damaged last frame (full length, bad bytes) is a torn tail too', async () => {
    const { dir, segment } = await threeEntries();
    await flipByte(segment, 2 * FRAME + 120);
    const { spool, letters } = await reopen(dir);
    expect(letters).toEqual(['A', 'B']);
    expect(spool.recovery).toMatchObject({ tornTails: 1, corruptFrames: 0, lostRecords: 11, lostBytes: FRAME });
  });
});

describe('spool replay: corrupt frame in the middle', () => {
  it('a flipped payload byte in the middle record: only that record lost, exact, the one after recovered', async () => {
    const { dir, segment } = await threeEntries();
    await flipByte(segment, FRAME + 40 + 1 + 50);
    const { spool, log, letters } = await reopen(dir);
    expect(letters).toEqual(['A', 'C']);
    expect(spool.recovery).toMatchObject({ entries: 2, records: 16, tornTails: 0, corruptFrames: 1, lostRecords: 7, lostBytes: FRAME });
    const bad = log.withEvent(Events.SPOOL_CORRUPT_FRAME);
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ lostRecords: 7, recordsExact: true, offset: FRAME });
  });

  it('a flipped header byte: resynchronised on the next frame, bytes exact, records flagged not exact', async () => {
    const { dir, segment } = await threeEntries();
    await flipByte(segment, FRAME + 21); // the records count field
    const { spool, log, letters } = await reopen(dir);
    expect(letters).toEqual(['A', 'C']);
    expect(spool.recovery).toMatchObject({ corruptFrames: 1, lostRecords: 0, lostBytes: FRAME, tornTails: 0 });
    expect(log.withEvent(Events.SPOOL_CORRUPT_FRAME)[0]).toMatchObject({ recordsExact: false });
  });

  it('damage in an older segment does not stop the segments after it', async () => {
    const t = await tempDir('recovery');
    cleanups.push(t.cleanup);
    const spool = await Spool.open({ dir: t.dir, maxBytes: 1e6, segmentBytes: 2 * FRAME, fsync: 'always', logger: captureLogger().logger });
    for (let i = 0; i < 6; i++) await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(100, 65 + i) }]);
    await spool.close();
    const logs = (await readdir(t.dir)).filter((f) => f.endsWith('.log')).sort();
    expect(logs).toHaveLength(3);
    await flipByte(join(t.dir, logs[0] ?? ''), FRAME + 100); // last frame of the first segment
    const { spool: again, letters } = await reopen(t.dir);
    expect(letters).toEqual(['A', 'C', 'D', 'E', 'F']);
    expect(again.recovery).toMatchObject({ segments: 3, lostRecords: 1 });
  });
});

describe('spool replay: acks', () => {
  it('a damaged ack record means a replay (duplicate), never a loss', async () => {
    const t = await tempDir('recovery');
    cleanups.push(t.cleanup);
    const spool = await Spool.open({ dir: t.dir, maxBytes: 1e6, fsync: 'always', logger: captureLogger().logger });
    const es = await spool.append([0, 1, 2].map((i) => ({ stream: 'S', records: 1, payload: Buffer.alloc(10, 65 + i) })));
    await spool.ack([es[0]?.id ?? -1]);
    await spool.ack([es[1]?.id ?? -1]);
    await spool.close();
    const ack = (await readdir(t.dir)).find((f) => f.endsWith('.ack')) ?? '';
    await flipByte(join(t.dir, ack), 12 + 8 + 12 + 3); // the second ack record's id
    const { letters } = await reopen(t.dir);
    expect(letters).toEqual(['B', 'C']);
  });
});

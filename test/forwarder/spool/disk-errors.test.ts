/**
 * Real disk errors, not mocks: a 1 MiB tmpfs fills up (ENOSPC; needs root for mount), and a spool
 * directory removed underneath the running spool (ENOENT on the next segment; runs anywhere).
 */
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Spool } from '../../../src/forwarder/spool/index.js';
import { Events } from '../../../src/log/events.js';
import { isPortcullisError } from '../../../src/util/errors.js';
import { codeOf } from '../../helpers/errors.js';
import { mountTmpfs } from '../../helpers/tmpfs.js';
import { captureLogger, tempDir } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A tmpfs of `size`; null when this machine does not let us (an error under CI). */
function tinyTmpfs(size: string): string | null {
  const t = mountTmpfs(size, 'the real ENOSPC test');
  if (t === null) return null;
  cleanups.push(() => Promise.resolve(t.cleanup()));
  return t.mnt;
}

/** Writes `path` until the file system has no page left; returns the path. */
async function fillUp(path: string): Promise<string> {
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < 1024; i++) await fh.write(Buffer.alloc(4096));
    throw new Error('the tmpfs did not fill up');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return path;
}

describe('spool disk errors', () => {
  it('ENOSPC on append: PCL_ERR_SPOOL_IO, unhealthy, nothing acknowledged, earlier entries intact; acks free space and it recovers', async () => {
    const mnt = tinyTmpfs('1m');
    if (mnt === null) return;
    const log = captureLogger();
    const opts = { dir: join(mnt, 'spool'), maxBytes: 64 * 1024 * 1024, segmentBytes: 128 * 1024, fsync: 'always', logger: log.logger } as const;
    const spool = await Spool.open(opts);
    const ok: number[] = [];
    let failure: unknown = null;
    for (let i = 0; i < 100 && failure === null; i++) {
      try {
        ok.push(...(await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(32 * 1024, i) }])).map((e) => e.id));
      } catch (err) {
        failure = err;
      }
    }
    expect(isPortcullisError(failure) && failure.code).toBe('PCL_ERR_SPOOL_IO');
    expect(String((failure as Error).message)).toMatch(/ENOSPC|no space/i);
    expect(ok.length).toBeGreaterThan(10);
    expect(spool.stats()).toMatchObject({ healthy: false, pendingEntries: ok.length });
    expect(spool.stats().lastError).toMatch(/ENOSPC|no space/i);
    expect(log.withEvent(Events.SPOOL_IO_ERROR).length).toBeGreaterThan(0);
    // Still failing while the disk is full; nothing half-written is handed out.
    expect(await codeOf(spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(64 * 1024) }]))).toBe('PCL_ERR_SPOOL_IO');
    // An ack on a disk with not one free page: its record cannot be written (PCL_ERR_SPOOL_IO),
    // yet the entry is never handed out again, and the record is retried once space is back.
    const filler = await fillUp(join(mnt, 'filler'));
    const last = ok.pop() ?? -1;
    expect(await codeOf(spool.ack([last]))).toBe('PCL_ERR_SPOOL_IO');
    await rm(filler);
    const taken = await spool.take('S', Number.MAX_SAFE_INTEGER);
    expect(taken.map((e) => e.id)).toEqual(ok);
    taken.forEach((e, i) => expect(e.payload[0]).toBe(i % 256));
    // Delivering (acking) frees whole segments; appends succeed again and the spool is healthy.
    await spool.ack(taken.slice(0, Math.floor(taken.length * 0.75)).map((e) => e.id));
    const later = await spool.append([{ stream: 'S', records: 1, payload: Buffer.alloc(32 * 1024, 7) }]);
    expect(spool.stats().healthy).toBe(true);
    await spool.close();
    // Replay: exactly the unacked entries, and the failed appends left no torn frame behind.
    const again = await Spool.open({ ...opts, logger: captureLogger().logger });
    cleanups.push(() => again.close());
    const expected = [...ok.slice(Math.floor(ok.length * 0.75)), ...later.map((e) => e.id)];
    expect((await again.take('S', Number.MAX_SAFE_INTEGER)).map((e) => e.id)).toEqual(expected);
    expect(again.recovery).toMatchObject({ tornTails: 0, corruptFrames: 0, lostRecords: 0 });
  });

  it('the spool directory removed underneath: PCL_ERR_SPOOL_IO and unhealthy, then healthy once it is back', async () => {
    const t = await tempDir('gone');
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'spool');
    const spool = await Spool.open({ dir, maxBytes: 1e6, fsync: 'always', logger: captureLogger().logger });
    cleanups.push(() => spool.close());
    await rm(dir, { recursive: true });
    expect(await codeOf(spool.append([{ stream: 'S', records: 1, payload: Buffer.from('x') }]))).toBe('PCL_ERR_SPOOL_IO');
    expect(spool.stats().healthy).toBe(false);
    await mkdir(dir);
    await spool.append([{ stream: 'S', records: 1, payload: Buffer.from('y') }]);
    expect(spool.stats().healthy).toBe(true);
  });
});

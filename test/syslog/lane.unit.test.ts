/**
 * A syslog source's lane over a real spool (fsync always): a connection's blocks are queued for
 * the spool as soon as they are parsed, without waiting for the block before them to be durable
 * (one group commit carries several, which is what let intake pass ~75k CEF msg/s), and still
 * land in the spool, and are answered (onSpooled: RELP's acks), in the order they were read; a
 * full spool holds everything after the refused block until there is room.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../../src/forwarder/spool/spool.js';
import { streamKey, type RecordIntake } from '../../src/forwarder/index.js';
import { Pipeline, SourceLane } from '../../src/syslog/pipeline.js';
import { SyslogRoutes } from '../../src/syslog/routes.js';
import { runParse, type ParseBlock, type ParseTask } from '../../src/syslog/parse/task.js';
import { captureLogger, tempDir, text } from '../forwarder/spool/helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function lane(maxBytes: number) {
  const t = await tempDir('lane');
  const { logger } = captureLogger();
  const spool = await Spool.open({ dir: t.dir, maxBytes, fsync: 'always', logger });
  cleanups.push(async () => {
    await spool.close();
    await t.cleanup();
  });
  /** What happened, in order: "queued N" when block N's entries went to the spool, "durable N" when that resolved. */
  const events: string[] = [];
  let block = 0;
  const intake: RecordIntake = {
    isLogsIngestionDestination: () => true,
    enqueue: (destination, stream, entries) => {
      const n = ++block;
      const queued = spool.tryAppend(entries.map((e) => ({ stream: streamKey(destination, stream), records: e.records, payload: e.payload })));
      if (!queued) {
        block--;
        events.push('full');
        return null;
      }
      events.push(`queued ${n}`);
      return queued.then(() => void events.push(`durable ${n}`));
    },
    hasRoom: () => spool.stats().bytes < spool.stats().maxBytes,
    entryMaxBytes: () => 960 * 1024,
    // The pool thread's work, in this thread (the pool itself is the forwarder's, tested there).
    runInPool: <T, R>(_file: string, task: T): Promise<R> => Promise.resolve(runParse(task as unknown as ParseTask) as unknown as R),
    threads: 1,
    beforeDrain: () => undefined,
    deflateLevel: () => 1,
  };
  const routes = new SyslogRoutes({
    listeners: [],
    maxMessageBytes: 65536,
    udpReceiveBufferBytes: 0,
    idleTimeoutMs: 60_000,
    maxConnections: 100,
    routes: [{ name: 'cef', match: {}, to: 'sentinel', stream: 'Custom-CommonSecurityLog', filter: { dropFacilities: [], minSeverity: 'debug' } }],
  });
  const pipeline = new Pipeline({ intake, routes: () => routes, workerFile: '', metrics: null, logger });
  const flow = { paused: 0, resumed: 0, pause: () => void flow.paused++, resume: () => void flow.resumed++ };
  return { spool, events, lane: new SourceLane(pipeline, 'tcp', flow), flow };
}

/** Block n: `lines` CEF messages whose act= carries "n.i". */
function cefBlock(n: number, lines = 50): ParseBlock {
  const text = Array.from({ length: lines }, (_, i) => `<14>Mar  1 10:15:30 fw CEF:0|V|P|1|id|n|5|act=${n}.${i} src=10.0.0.1\n`).join('');
  return { mode: 'newline', bytes: Buffer.from(text), sourceIp: '192.0.2.7', candidates: [0] };
}

async function spooledActs(spool: Spool): Promise<string[]> {
  const out: string[] = [];
  for (const s of spool.streams())
    for (const e of await spool.take(s, Number.MAX_SAFE_INTEGER))
      for (const r of JSON.parse(`[${text(e.payload)}]`) as Array<{ DeviceAction: string }>) out.push(r.DeviceAction);
  return out;
}

describe('a syslog source lane', () => {
  it('queues the next block before the last one is durable, and keeps the read order in the spool and in the answers', async () => {
    const { spool, events, lane: l } = await lane(64 * 1024 * 1024);
    const answered: number[] = [];
    for (let n = 1; n <= 3; n++) l.push([cefBlock(n)], (kept) => void (kept && answered.push(n)));
    await l.idle();
    // Block 2 went to the spool before block 1's fdatasync returned (the old lane waited for it).
    expect(events.indexOf('queued 2')).toBeLessThan(events.indexOf('durable 1'));
    expect(answered).toEqual([1, 2, 3]);
    const want = [1, 2, 3].flatMap((n) => Array.from({ length: 50 }, (_, i) => `${n}.${i}`));
    expect(await spooledActs(spool)).toEqual(want);
  });

  it('holds every later block while the spool is full, then spools them all in order once acks free room', async () => {
    const { spool, events, lane: l, flow } = await lane(12 * 1024);
    const answered: number[] = [];
    for (let n = 1; n <= 4; n++) l.push([cefBlock(n, 30)], (kept) => void (kept && answered.push(n)));
    await expect.poll(() => events.includes('full'), { timeout: 5000 }).toBe(true);
    expect(flow.paused).toBeGreaterThan(0);
    // Nothing after the refused block was queued meanwhile.
    const queuedBefore = events.filter((e) => e.startsWith('queued')).length;
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.startsWith('queued')).length).toBe(queuedBefore);
    // An upstream delivery acks what is there; the lane goes on by itself.
    const acts: string[] = [];
    while (answered.length < 4) {
      for (const s of spool.streams()) {
        const taken = await spool.take(s, Number.MAX_SAFE_INTEGER);
        for (const e of taken) for (const r of JSON.parse(`[${text(e.payload)}]`) as Array<{ DeviceAction: string }>) acts.push(r.DeviceAction);
        await spool.ack(taken.map((e) => e.id));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await l.idle();
    acts.push(...(await spooledActs(spool)));
    expect(answered).toEqual([1, 2, 3, 4]);
    expect(acts).toEqual([1, 2, 3, 4].flatMap((n) => Array.from({ length: 30 }, (_, i) => `${n}.${i}`)));
  });
});

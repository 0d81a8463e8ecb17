import { mkdir, open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../log/logger.js';
import { Events } from '../../log/events.js';
import { PortcullisError } from '../../util/errors.js';
import { ForwarderErrors } from '../../errors/catalogue.js';
import { encodeAck, encodeFrameHead, frameBytes, payloadRawLength, RUN_PREFIX_BYTES } from './frame.js';
import { StreamQueue, type IndexEntry } from './queue.js';
import { recover } from './recovery.js';
import { Segment } from './segment.js';
import type { AppendItem, FsyncMode, PendingInfo, RecoveryReport, SpoolEntry, SpoolEntryRef, SpoolOptions, SpoolStats } from './types.js';

const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
const DEFAULT_FSYNC_INTERVAL_MS = 1000;
/** Reads of neighbouring payloads closer than this are merged into one pread. */
const READ_MERGE_GAP = 4096;

interface AppendRequest {
  heads: Buffer[];
  items: AppendItem[];
  ids: number[];
  appendedAt: number;
  bytes: number;
  resolve: (entries: SpoolEntry[]) => void;
  reject: (err: unknown) => void;
}

interface AckRequest {
  entries: IndexEntry[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

function ioError(what: string, cause: unknown): PortcullisError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new PortcullisError(ForwarderErrors.SPOOL_IO.code, `spool: ${what} failed: ${detail}`, { cause });
}

/**
 * Durable, append-only, bounded spool of forwarder entries (see forwarder-design.md).
 *
 * Durability ('always'): concurrent appends are coalesced into one writev (group commit) to a
 * segment opened with O_DSYNC, so the write returns once the data is durable (what a writev plus
 * an fdatasync give, in one trip to the thread pool: each trip waits for a turn of a busy event
 * loop); append() resolves after it, ack() after the ack record's fdatasync. New and deleted
 * segment files are made durable with an fsync of the directory.
 *
 * At-least-once window: an entry comes back after a crash if its ack() had not resolved (the
 * upstream may already have it: a duplicate). An entry whose append() resolved is never lost
 * (in 'always' mode; in 'interval' mode up to fsyncIntervalMs of resolved appends can be lost on
 * a power cut, in 'never' mode whatever the OS had not written). A torn or damaged tail only holds
 * appends that never resolved.
 *
 * Single writer: exactly one Spool per directory (the forwarder runs in the main process only).
 */
export class Spool {
  readonly recovery: RecoveryReport;
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly fsyncMode: FsyncMode;
  private readonly logger: Logger;
  private readonly segments: Segment[];
  private readonly index = new Map<number, IndexEntry>();
  private readonly queues = new Map<string, StreamQueue>();
  private readonly listeners: Array<(stream: string) => void> = [];
  private active: Segment | null = null;
  private nextId: number;
  private diskBytes: number;
  private queuedBytes = 0;
  private appendQueue: AppendRequest[] = [];
  private ackQueue: AckRequest[] = [];
  private writer: Promise<void> | null = null;
  private acker: Promise<void> | null = null;
  private dirDirty = false;
  private readonly housekeeping = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private healthy = true;
  private lastError: string | null = null;
  private wasFull = false;
  private readonly counters = { appends: 0, fsyncs: 0, refusedFull: 0, ioErrors: 0 };

  private constructor(
    opts: SpoolOptions,
    segments: Segment[],
    report: RecoveryReport,
    nextId: number,
    private readonly dirHandle: FileHandle,
  ) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.fsyncMode = opts.fsync;
    this.logger = opts.logger;
    this.segments = segments;
    this.recovery = report;
    this.nextId = nextId;
    this.diskBytes = segments.reduce((n, s) => n + s.size, 0);
    if (opts.fsync === 'interval') {
      this.timer = setInterval(() => void this.syncDirty(), opts.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Opens (creating) the spool directory and replays it; what replay found is in `recovery`. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const created = await mkdir(opts.dir, { recursive: true });
    // A directory just created must itself survive a power cut: fsync its parent.
    if (created !== undefined) await fsyncDir(dirname(opts.dir));
    const r = await recover(opts.dir, opts.logger);
    // Deletions and truncations done by recovery, and the directory itself, made durable before
    // anything new is written; ids continue above everything on disk and above a clock-based
    // floor, so an id is never reused even if every file was deleted.
    // The directory stays open: each later fsync of it is then one trip to the thread pool, not three.
    const dirHandle = await open(opts.dir, 'r');
    try {
      await dirHandle.sync();
    } catch (err) {
      await dirHandle.close().catch(() => undefined);
      throw err;
    }
    const nextId = Math.max(r.maxId + 1, Date.now() * 1000);
    const spool = new Spool(opts, r.segments, r.report, nextId, dirHandle);
    // A sealed entry may have been written before its upload's check finished (the check and the
    // write run side by side): it waits for verifyHeld() before it can be sent.
    for (const e of r.entries) spool.insert({ ...e, state: e.sealed ? 'held' : 'queued' });
    opts.logger.info({ event: Events.SPOOL_RECOVERED, dir: opts.dir, ...r.report }, 'spool opened');
    return spool;
  }

  append(items: AppendItem[]): Promise<SpoolEntry[]> {
    return this.tryAppend(items) ?? Promise.reject(new PortcullisError(ForwarderErrors.SPOOL_FULL.code, ForwarderErrors.SPOOL_FULL.message));
  }

  /**
   * append(), except that a full spool answers at once with null (nothing queued) instead of a
   * rejection: a caller that keeps an order (a syslog connection's blocks) queues its next
   * append right after this one, without waiting for this one's fdatasync, and waits for room
   * before it queues anything after a refusal.
   */
  tryAppend(items: AppendItem[]): Promise<SpoolEntry[]> | null {
    if (this.closed) return Promise.reject(new PortcullisError(ForwarderErrors.SPOOL_CLOSED.code, ForwarderErrors.SPOOL_CLOSED.message));
    if (items.length === 0) return Promise.resolve([]);
    const heads: Buffer[] = [];
    const ids: number[] = [];
    const appendedAt = Date.now();
    let bytes = 0;
    const streamBufs = items.map((it) => Buffer.from(it.stream, 'utf8'));
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const sb = streamBufs[i];
      if (it === undefined || sb === undefined) continue;
      if (
        sb.length > 0xffff ||
        it.payload.length > 0xffffffff ||
        !Number.isInteger(it.records) ||
        it.records < 0 ||
        it.records > 0xffffffff ||
        (it.deflated === true && (it.sealed === true || it.payload.length < RUN_PREFIX_BYTES))
      ) {
        return Promise.reject(new PortcullisError(ForwarderErrors.SPOOL_INPUT.code, ForwarderErrors.SPOOL_INPUT.message));
      }
      bytes += frameBytes(sb.length, it.payload.length);
    }
    if (this.diskBytes + this.queuedBytes + bytes > this.maxBytes) {
      this.counters.refusedFull++;
      if (!this.wasFull) {
        this.wasFull = true;
        this.logger.warn(
          { event: Events.SPOOL_FULL, bytes: this.diskBytes, maxBytes: this.maxBytes },
          'spool full: refusing new entries until acks free space',
        );
      }
      return null;
    }
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const sb = streamBufs[i];
      if (it === undefined || sb === undefined) continue;
      const id = this.nextId++;
      ids.push(id);
      heads.push(encodeFrameHead(id, appendedAt, it.records, sb, it.payload, it.sealed === true ? 'sealed' : it.deflated === true ? 'deflated' : 'records'));
    }
    this.queuedBytes += bytes;
    return new Promise<SpoolEntry[]>((resolve, reject) => {
      this.appendQueue.push({ heads, items, ids, appendedAt, bytes, resolve, reject });
      this.writer ??= this.runWriter();
    });
  }

  /** takeRefs() and read() in one; a failed read puts the entries back. */
  async take(stream: string, maxBytes: number, maxEntries = Number.POSITIVE_INFINITY): Promise<SpoolEntry[]> {
    const refs = this.takeRefs(stream, maxBytes, maxEntries);
    try {
      return await this.read(refs);
    } catch (err) {
      this.release(refs.map((r) => r.id));
      throw err;
    }
  }

  /** take() without reading the payloads: where each is on disk (see SpoolEntryRef). */
  takeRefs(stream: string, maxBytes: number, maxEntries = Number.POSITIVE_INFINITY): SpoolEntryRef[] {
    const q = this.queues.get(stream);
    if (q === undefined) return [];
    return q.take(maxBytes, maxEntries).map((e) => ({
      id: e.id,
      appendedAt: e.appendedAt,
      stream: e.stream,
      records: e.records,
      sealed: e.sealed,
      ...(e.deflated ? { deflated: true } : {}),
      path: e.segment.path,
      offset: e.offset,
      length: e.length,
      rawLength: e.rawLength,
    }));
  }

  /** The payloads of taken entries (takeRefs); the entries stay taken if the read fails. */
  async read(refs: readonly SpoolEntryRef[]): Promise<SpoolEntry[]> {
    const es: IndexEntry[] = [];
    for (const r of refs) {
      const e = this.index.get(r.id);
      if (e === undefined || e.state !== 'taken') {
        // Not a disk error: the caller asked for entries it does not hold (acked, released, or
        // never taken). Said once here, since the batcher only backs off.
        const err = new PortcullisError(
          ForwarderErrors.SPOOL_NOT_TAKEN.code,
          `spool: entry ${r.id} is ${e === undefined ? 'not in the spool' : e.state}, not taken`,
        );
        this.logger.error({ event: Events.INTERNAL_ERROR, err, stream: r.stream }, 'spool: entries read back that are not taken');
        throw err;
      }
      es.push(e);
    }
    try {
      return await this.readPayloads(es);
    } catch (err) {
      this.counters.ioErrors++;
      this.logger.error({ event: Events.SPOOL_IO_ERROR, err, stream: refs[0]?.stream }, 'spool: reading entries back failed');
      throw ioError('read', err);
    }
  }

  release(ids: number[]): void {
    const byStream = new Map<StreamQueue, IndexEntry[]>();
    for (const id of ids) {
      const e = this.index.get(id);
      if (e === undefined || e.state !== 'taken') continue;
      const q = this.queues.get(e.stream);
      if (q === undefined) continue;
      const list = byStream.get(q) ?? [];
      list.push(e);
      byStream.set(q, list);
    }
    for (const [q, list] of byStream) q.release(list);
  }

  ack(ids: number[]): Promise<void> {
    const entries: IndexEntry[] = [];
    for (const id of ids) {
      const e = this.index.get(id);
      if (e === undefined || e.state === 'acking') continue;
      this.queues.get(e.stream)?.detach(e);
      entries.push(e);
    }
    if (entries.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.ackQueue.push({ entries, resolve, reject });
      this.acker ??= this.runAcker();
    });
  }

  /**
   * The verdict on a held entry (AppendItem.held): `records` (its count) lets it be sent, in its
   * place in the stream; null drops it as if delivered (an ack record), since its upload was
   * refused. An entry not held (or unknown) is left alone.
   */
  settle(id: number, records: number | null): Promise<void> {
    // Closed: the entry stays on disk, held, and is checked again on the next start.
    if (this.closed) return Promise.resolve();
    const e = this.index.get(id);
    if (e === undefined || e.state !== 'held') return Promise.resolve();
    if (records === null) {
      // Detached at once: what was appended behind it may go now.
      const acked = this.ack([id]);
      this.notify([e.stream]);
      return acked;
    }
    e.records = records;
    this.queues.get(e.stream)?.unhold(e);
    this.notify([e.stream]);
    return Promise.resolve();
  }

  /**
   * Checks every held entry (after a restart: the sealed ones) with `check`, oldest first, a few
   * at a time, and settles each with its verdict (records, or null: dropped, logged). A read or
   * check that fails leaves the entry held (logged) so it is neither sent unchecked nor lost.
   */
  async verifyHeld(check: (payload: Uint8Array) => Promise<number | null>, concurrency = 4): Promise<{ kept: number; dropped: number; failed: number }> {
    const held = [...this.index.values()].filter((e) => e.state === 'held').sort((a, b) => a.id - b.id);
    const out = { kept: 0, dropped: 0, failed: 0 };
    let next = 0;
    const one = async (e: IndexEntry): Promise<void> => {
      try {
        const [payload] = await this.readPayloads([e]);
        if (payload === undefined) throw new Error('no payload read');
        const records = await check(payload.payload);
        if (records === null) {
          this.logger.warn(
            { event: Events.SPOOL_UNVERIFIED_DROPPED, id: e.id, stream: e.stream, bytes: e.length },
            'spool: a sealed entry written before its upload was checked fails the check: dropped (its upload was never acknowledged)',
          );
          out.dropped++;
        } else {
          out.kept++;
        }
        await this.settle(e.id, records);
      } catch (err) {
        out.failed++;
        // Closing: the check is simply done again on the next start.
        if (!this.closed) this.logger.error({ event: Events.SPOOL_IO_ERROR, err, id: e.id }, 'spool: checking a held entry failed: it stays held (not sent)');
      }
    };
    const runners = Array.from({ length: Math.max(1, concurrency) }, async () => {
      while (next < held.length && !this.closed) {
        const e = held[next++];
        if (e !== undefined && e.state === 'held') await one(e);
      }
    });
    await Promise.all(runners);
    return out;
  }

  streams(): string[] {
    const out: string[] = [];
    for (const [s, q] of this.queues) if (q.entries > 0) out.push(s);
    return out;
  }

  pending(stream?: string): PendingInfo {
    const qs = stream === undefined ? [...this.queues.values()] : [this.queues.get(stream)].filter((q) => q !== undefined);
    let entries = 0;
    let bytes = 0;
    let sealed = 0;
    let held = 0;
    let oldestAppendedAt: number | null = null;
    for (const q of qs) {
      entries += q.entries;
      bytes += q.bytes;
      sealed += q.sealed;
      held += q.held;
      const o = q.oldestAppendedAt();
      if (o !== null && (oldestAppendedAt === null || o < oldestAppendedAt)) oldestAppendedAt = o;
    }
    return { entries, bytes, sealed, held, oldestAppendedAt };
  }

  stats(): SpoolStats {
    const p = this.pending();
    return {
      bytes: this.diskBytes,
      maxBytes: this.maxBytes,
      segments: this.segments.length,
      healthy: this.healthy,
      lastError: this.lastError,
      pendingEntries: p.entries,
      pendingBytes: p.bytes,
      ...this.counters,
    };
  }

  onAppend(listener: (stream: string) => void): void {
    this.listeners.push(listener);
  }

  /** Finishes queued appends and acks, fdatasyncs everything (whatever the mode) and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    while (this.writer !== null || this.acker !== null) await Promise.all([this.writer, this.acker]);
    await this.retryUnsyncedAcks();
    await this.syncDirty();
    await Promise.all(this.housekeeping);
    for (const s of this.segments) await s.close();
    await this.dirHandle.close().catch(() => undefined);
  }

  // ---- writing -------------------------------------------------------------------------------

  private async runWriter(): Promise<void> {
    try {
      while (this.appendQueue.length > 0) {
        // One group: everything queued while the previous write+fsync was in flight, up to about
        // one segment so a group never spans two files.
        let n = 0;
        let bytes = 0;
        for (const r of this.appendQueue) {
          if (n > 0 && bytes + r.bytes > this.segmentBytes) break;
          bytes += r.bytes;
          n++;
        }
        const group = this.appendQueue.splice(0, n);
        await this.writeGroup(group, bytes);
      }
    } finally {
      this.writer = null;
    }
  }

  private async writeGroup(group: AppendRequest[], bytes: number): Promise<void> {
    let seg: Segment | null = null;
    let startSize = 0;
    try {
      seg = this.active;
      if (seg === null || (seg.size > 0 && seg.size + bytes > this.segmentBytes)) seg = await this.newSegment(group[0]?.ids[0] ?? this.nextId);
      startSize = seg.size;
      const bufs: Uint8Array[] = [];
      for (const r of group) {
        for (let i = 0; i < r.heads.length; i++) {
          const h = r.heads[i];
          const it = r.items[i];
          if (h === undefined || it === undefined) continue;
          bufs.push(h, it.payload);
        }
      }
      // 'always': the segment is O_DSYNC (newSegment), so this write is the group's fdatasync.
      await writeAll(seg.fh, bufs, startSize);
      if (this.fsyncMode === 'always') this.counters.fsyncs++;
      else seg.dirty = true;
    } catch (err) {
      this.queuedBytes -= bytes;
      await this.failGroup(group, seg, startSize, err);
      return;
    }
    this.queuedBytes -= bytes;
    seg.size = startSize + bytes;
    this.diskBytes += bytes;
    this.counters.appends += group.length;
    if (!this.healthy) this.logger.info({ event: Events.SPOOL_IO_ERROR, healthy: true }, 'spool: writes succeed again');
    this.healthy = true;
    this.lastError = null;
    this.wasFull = false;
    const touched = new Set<string>();
    let pos = startSize;
    for (const r of group) {
      const out: SpoolEntry[] = [];
      for (let i = 0; i < r.items.length; i++) {
        const it = r.items[i];
        const h = r.heads[i];
        const id = r.ids[i];
        if (it === undefined || h === undefined || id === undefined) continue;
        pos += h.length;
        this.insert({
          id,
          stream: it.stream,
          records: it.records,
          appendedAt: r.appendedAt,
          segment: seg,
          offset: pos,
          length: it.payload.length,
          sealed: it.sealed === true,
          deflated: it.deflated === true,
          rawLength: payloadRawLength(it.payload, it.deflated === true),
          state: it.held === true ? 'held' : 'queued',
        });
        seg.live++;
        pos += it.payload.length;
        touched.add(it.stream);
        out.push({
          id,
          appendedAt: r.appendedAt,
          stream: it.stream,
          records: it.records,
          payload: it.payload,
          sealed: it.sealed === true,
          ...(it.deflated ? { deflated: true } : {}),
        });
      }
      r.resolve(out);
    }
    this.notify(touched);
  }

  /** onAppend listeners: these streams have something new to take. */
  private notify(streams: Iterable<string>): void {
    for (const s of streams) {
      for (const l of this.listeners) {
        try {
          l(s);
        } catch (err) {
          this.logger.error({ event: Events.INTERNAL_ERROR, err }, 'spool: onAppend listener threw');
        }
      }
    }
  }

  /**
   * A failed write or fdatasync: cut what may have reached the file and never write to that
   * segment again (after a failed fsync the kernel may have dropped the dirty pages and a later
   * fsync would report success), so the next group starts a fresh segment.
   */
  private async failGroup(group: AppendRequest[], seg: Segment | null, startSize: number, err: unknown): Promise<void> {
    this.healthy = false;
    this.counters.ioErrors++;
    const e = ioError('append', err);
    this.lastError = e.message;
    this.logger.error(
      { event: Events.SPOOL_IO_ERROR, err, code: (err as NodeJS.ErrnoException).code },
      'spool: append failed; nothing acknowledged, spool unhealthy',
    );
    if (seg !== null) {
      await seg.fh.truncate(startSize).catch(() => undefined);
      if (this.active === seg) this.active = null;
      if (seg.live === 0) await this.dropQuietly(seg);
    }
    for (const r of group) r.reject(e);
  }

  private async newSegment(firstId: number): Promise<Segment> {
    const seg = await Segment.create(this.dir, firstId, this.fsyncMode === 'always');
    this.segments.push(seg);
    const prev = this.active;
    this.active = seg;
    if (prev !== null && prev.live === 0) await this.dropQuietly(prev);
    if (this.fsyncMode === 'always') await this.syncDir();
    else this.dirDirty = true;
    return seg;
  }

  private insert(e: IndexEntry): void {
    this.index.set(e.id, e);
    let q = this.queues.get(e.stream);
    if (q === undefined) {
      q = new StreamQueue();
      this.queues.set(e.stream, q);
    }
    q.push(e);
  }

  // ---- reading -------------------------------------------------------------------------------

  private async readPayloads(es: IndexEntry[]): Promise<SpoolEntry[]> {
    const out: SpoolEntry[] = new Array<SpoolEntry>(es.length);
    const jobs: Promise<void>[] = [];
    let i = 0;
    while (i < es.length) {
      const first = es[i];
      if (first === undefined) break;
      // Neighbouring payloads of one segment in one pread.
      let j = i + 1;
      let end = first.offset + first.length;
      for (; j < es.length; j++) {
        const e = es[j];
        if (e === undefined || e.segment !== first.segment || e.offset < end || e.offset - end > READ_MERGE_GAP) break;
        end = e.offset + e.length;
      }
      const from = i;
      const to = j;
      jobs.push(
        first.segment.read(first.offset, end - first.offset).then((buf) => {
          for (let k = from; k < to; k++) {
            const e = es[k];
            if (e === undefined) continue;
            const start = e.offset - first.offset;
            out[k] = {
              id: e.id,
              appendedAt: e.appendedAt,
              stream: e.stream,
              records: e.records,
              payload: buf.subarray(start, start + e.length),
              sealed: e.sealed,
              ...(e.deflated ? { deflated: true } : {}),
            };
          }
        }),
      );
      i = j;
    }
    await Promise.all(jobs);
    return out;
  }

  // ---- acknowledging -------------------------------------------------------------------------

  private async runAcker(): Promise<void> {
    try {
      while (this.ackQueue.length > 0) {
        const group = this.ackQueue.splice(0);
        await this.writeAcks(group);
      }
    } finally {
      this.acker = null;
    }
  }

  /**
   * One ack group commit. Acked entries leave memory at once (they were delivered: never handed
   * out again by this process). A segment left with no live entry is simply deleted: the unlink
   * is the durable ack and needs no free space, so a full disk can always be drained. Other
   * segments get an ack record; if that write fails (ENOSPC, EIO) the ids are kept and written
   * with the segment's next ack record, and the ack() rejects: until then a crash would replay
   * those entries (duplicates, never losses).
   */
  private async writeAcks(group: AckRequest[]): Promise<void> {
    const bySegment = new Map<Segment, number[]>();
    for (const r of group) {
      for (const e of r.entries) {
        const ids = bySegment.get(e.segment) ?? [];
        ids.push(e.id);
        bySegment.set(e.segment, ids);
        this.index.delete(e.id);
        this.queues.get(e.stream)?.forget(e);
        e.segment.live--;
      }
    }
    for (const [name, q] of [...this.queues]) if (q.entries === 0) this.queues.delete(name);
    const drop: Segment[] = [];
    const record: Array<[Segment, number[]]> = [];
    for (const [seg, ids] of bySegment) {
      // The active segment with a write in flight will hold new entries: it needs a record.
      if (seg.live === 0 && !(seg === this.active && this.writer !== null)) drop.push(seg);
      else record.push([seg, ids]);
    }
    let failure: unknown = null;
    // Deletions first: they free space the ack records may need.
    for (const seg of drop) {
      try {
        await this.dropSegment(seg);
      } catch (err) {
        failure ??= err;
      }
    }
    let created = false;
    await Promise.all(
      record.map(async ([seg, ids]) => {
        const all = seg.unsyncedAcks.length > 0 ? [...seg.unsyncedAcks, ...ids] : ids;
        try {
          const a = await seg.ackHandle(this.fsyncMode === 'always');
          created ||= a.created;
          // 'always': the ack file is O_DSYNC, so this write is the record's fdatasync.
          await a.fh.write(encodeAck(all));
          if (this.fsyncMode === 'always') this.counters.fsyncs++;
          else seg.ackDirty = true;
          seg.unsyncedAcks = [];
        } catch (err) {
          seg.unsyncedAcks = all;
          failure ??= err;
        }
      }),
    );
    if (created && failure === null) {
      try {
        if (this.fsyncMode === 'always') await this.syncDir();
        else this.dirDirty = true;
      } catch (err) {
        failure = err;
      }
    }
    if (failure !== null) {
      this.counters.ioErrors++;
      this.healthy = false;
      const e = ioError('ack', failure);
      this.lastError = e.message;
      this.logger.error(
        { event: Events.SPOOL_IO_ERROR, err: failure },
        'spool: an ack did not reach the disk; it is retried with the next ack (a crash before that replays those entries)',
      );
      for (const r of group) r.reject(e);
      return;
    }
    for (const r of group) r.resolve();
  }

  private async dropQuietly(seg: Segment): Promise<void> {
    try {
      await this.dropSegment(seg);
    } catch (err) {
      this.counters.ioErrors++;
      this.logger.error({ event: Events.SPOOL_IO_ERROR, err, segment: seg.path }, 'spool: deleting an empty segment failed');
    }
  }

  /** Deletes a fully acknowledged segment: data file first (durably), then its ack file. */
  private async dropSegment(seg: Segment): Promise<void> {
    if (seg.deleted) return;
    seg.deleted = true;
    if (this.active === seg) this.active = null;
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    this.diskBytes -= seg.size;
    try {
      await unlink(seg.path);
      // If the data file's deletion were lost but the ack file's not, acked entries would replay.
      if (this.fsyncMode === 'always') await this.syncDir();
      else this.dirDirty = true;
    } catch (err) {
      this.background(seg.close());
      throw err;
    }
    // The data file's durable deletion is the ack. Its ack file is now an orphan (recovery deletes
    // those) and goes after, with the handles, off the acks' path (each step is a trip to the
    // thread pool that waits for a turn of the event loop).
    this.background(
      unlink(seg.ackPath)
        .catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT')
            this.logger.warn({ event: Events.SPOOL_IO_ERROR, err, segment: seg.ackPath }, 'spool: deleting an ack file failed; the next start deletes it');
        })
        .finally(() => seg.close()),
    );
  }

  /** Housekeeping nobody waits for; close() does. Never rejects. */
  private background(p: Promise<unknown>): void {
    const tracked: Promise<void> = p.then(
      () => undefined,
      () => undefined,
    );
    this.housekeeping.add(tracked);
    void tracked.finally(() => this.housekeeping.delete(tracked));
  }

  /** close(): one more try for acks whose record failed earlier (else they replay: duplicates). */
  private async retryUnsyncedAcks(): Promise<void> {
    for (const seg of this.segments) {
      if (seg.unsyncedAcks.length === 0 || seg.deleted) continue;
      try {
        const a = await seg.ackHandle(this.fsyncMode === 'always');
        await a.fh.write(encodeAck(seg.unsyncedAcks));
        seg.ackDirty = true;
        seg.unsyncedAcks = [];
      } catch (err) {
        this.logger.error(
          { event: Events.SPOOL_IO_ERROR, err, segment: seg.path, ids: seg.unsyncedAcks.length },
          'spool: acks still not written at close; those entries will replay',
        );
      }
    }
  }

  // ---- syncing -------------------------------------------------------------------------------

  private async syncDir(): Promise<void> {
    await this.dirHandle.sync();
    this.counters.fsyncs++;
  }

  /** 'interval' timer and close(): fdatasync whatever was written since the last sync. */
  private async syncDirty(): Promise<void> {
    try {
      for (const s of [...this.segments]) {
        if (s.deleted) continue;
        if (s.dirty) {
          s.dirty = false;
          await s.fh.datasync();
          this.counters.fsyncs++;
        }
        if (s.ackDirty && s.ack !== null) {
          s.ackDirty = false;
          await s.ack.datasync();
          this.counters.fsyncs++;
        }
      }
      if (this.dirDirty) {
        this.dirDirty = false;
        await this.syncDir();
      }
    } catch (err) {
      this.counters.ioErrors++;
      this.healthy = false;
      this.lastError = ioError('fsync', err).message;
      // As after a failed append: do not trust this segment with more data.
      this.active = null;
      this.logger.error({ event: Events.SPOOL_IO_ERROR, err }, 'spool: periodic fsync failed; spool unhealthy');
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** writev at `position` until every byte is written (a short write is retried, not ignored). */
async function writeAll(fh: FileHandle, bufs: Uint8Array[], position: number): Promise<void> {
  let pending = bufs;
  let pos = position;
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, pos);
    pos += bytesWritten;
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of pending) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    if (bytesWritten === 0 && rest.length > 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    pending = rest;
  }
}

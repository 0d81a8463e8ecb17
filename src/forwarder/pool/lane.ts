/**
 * The decode lane: upload decoding (gunzip, JSON.parse, checks, split) on dedicated worker threads
 * spoken to over their MessagePort: one message each way per turn of the event loop, carrying
 * every upload read in that turn.
 *
 * Why not the piscina pool: measured on the 2-core test VM, a piscina task costs the main thread
 * 45-55 µs (its task envelope and bookkeeping), as much as parsing a 9 KB upload right there, so
 * handing uploads to the pool freed nothing; a bare MessagePort costs 31-34 µs per upload, and
 * 12.5-14.5 µs with the uploads of one turn in one message (64 in flight). The pool keeps the batch
 * builds (a few per second, large, where its overhead does not matter).
 *
 * A lane thread that dies fails its pending decodes (the ingest answers 500, nothing was
 * acknowledged) and is replaced; until a replacement is up, uploads are decoded inline.
 */
import { compiledWorkerFile } from './worker-file.js';
import { Worker } from 'node:worker_threads';
import { decode, gzipTrailerLength, type DecodeResult, type DecodeTask } from './decode.js';
import type { LaneReply, LaneRequest } from './lane-worker.js';
import { ownArrayBuffer } from '../../util/buffers.js';

const RESPAWN_DELAY_MS = 1_000;

/**
 * A small young generation for the forwarder's threads. What they allocate dies young (a parsed
 * upload, checked and dropped; a batch, compressed and handed back), so a scavenge finds little
 * alive and stays cheap, while V8's default (up to 16 MB per semi-space, 48 MB young generation
 * per isolate) held tens of MB of garbage in each of 4-5 threads: the gateway's RSS passed 450 MB
 * with the SDK's 1 MB uploads, against 300 MB we allow ourselves.
 */
export const WORKER_HEAP_LIMITS = { maxYoungGenerationSizeMb: 8 };

interface Pending {
  resolve: (r: DecodeResult) => void;
  reject: (err: Error) => void;
  bytes: number;
}

/**
 * Decoded bytes a lane thread may hold before uploads go to the next thread: small uploads share
 * one thread (one message per turn, the cheapest for the main thread), while large ones (the SDK
 * sends gzip chunks of up to 1 MB, ~95 KB on the wire) spread over all. Counted decoded, not on
 * the wire: the work is inflating and scanning, and a thread holding five compressed 1 MB chunks
 * while the other idled made the slowest uploads wait 20-65 ms in the lane.
 */
const SPILL_BYTES = 512 * 1024;

/** What a decode costs, in bytes to scan: a gzip body's inflated size (its trailer says it; bounded by the limit). */
export function decodeWeight(task: DecodeTask): number {
  const b = task.body;
  if (!task.gzip || b.byteLength < 18) return b.byteLength;
  return Math.max(b.byteLength, Math.min(gzipTrailerLength(b), task.maxDecodedBytes));
}

class LaneThread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  /** Decoded bytes (decodeWeight) of the pending decodes. */
  pendingBytes = 0;
  /** Requests of this event-loop turn, posted together by flush(). */
  #outbox: LaneRequest[] = [];
  #transfer: ArrayBuffer[] = [];
  #flushing: NodeJS.Immediate | null = null;

  constructor(file: string, onExit: (t: LaneThread, why: Error) => void) {
    this.worker = new Worker(file, { resourceLimits: WORKER_HEAP_LIMITS });
    this.worker.on('message', (replies: LaneReply[]) => {
      for (const reply of replies) {
        const p = this.pending.get(reply.id);
        if (!p) continue;
        this.pending.delete(reply.id);
        this.pendingBytes -= p.bytes;
        if (reply.result) p.resolve(reply.result);
        else p.reject(new Error(`decode failed in the lane thread: ${reply.error ?? 'unknown error'}`));
      }
      if (this.pending.size === 0) this.worker.unref();
    });
    // 'error' is followed by 'exit': the pending decodes fail once, at exit.
    let failure: Error | null = null;
    this.worker.on('error', (err) => (failure = err));
    this.worker.on('exit', (code) => onExit(this, failure ?? new Error(`decode lane thread exited (${code})`)));
  }

  /**
   * Queues a request; one message per turn of the event loop carries them all (setImmediate runs
   * after the poll phase that read those uploads). Under load this posts a fraction of the
   * messages, and every message wakes the lane thread and then the main thread again.
   */
  post(req: LaneRequest, transfer: ArrayBuffer[], p: Pending): void {
    // Referenced only while it holds work: a pending decode keeps the process alive, an idle lane does not.
    if (this.pending.size === 0) this.worker.ref();
    this.pending.set(req.id, p);
    this.pendingBytes += p.bytes;
    this.#outbox.push(req);
    this.#transfer.push(...transfer);
    this.#flushing ??= setImmediate(() => this.flush());
  }

  flush(): void {
    this.#flushing = null;
    if (this.#outbox.length === 0) return;
    const batch = this.#outbox;
    const transfer = this.#transfer;
    this.#outbox = [];
    this.#transfer = [];
    try {
      this.worker.postMessage(batch, transfer);
    } catch (err) {
      // A body that cannot be sent (it cannot happen with readBody's buffers, but an upload must
      // never wait forever): those uploads fail, the others are unaffected.
      const why = new Error(`decode lane: could not post uploads: ${err instanceof Error ? err.message : String(err)}`);
      for (const req of batch) {
        const p = this.pending.get(req.id);
        if (!p) continue;
        p.reject(why);
        this.pending.delete(req.id);
        this.pendingBytes -= p.bytes;
      }
      if (this.pending.size === 0) this.worker.unref();
    }
  }

  failAll(err: Error): void {
    if (this.#flushing) clearImmediate(this.#flushing);
    this.#flushing = null;
    this.#outbox = [];
    this.#transfer = [];
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.pendingBytes = 0;
  }
}

export class DecodeLane {
  readonly #file: string;
  readonly #threads: LaneThread[] = [];
  #nextId = 1;
  #closed = false;

  constructor(readonly size: number) {
    this.#file = compiledWorkerFile('lane-worker.js');
    for (let i = 0; i < size; i++) this.#spawn();
  }

  /**
   * `task.body` is moved to the lane thread (the caller must not use it afterwards) when it owns
   * its ArrayBuffer whole; otherwise it is copied.
   */
  decode(task: DecodeTask): Promise<DecodeResult> {
    const bytes = decodeWeight(task);
    const thread = this.#pick(bytes);
    if (!thread) return Promise.resolve(decode(task));
    const id = this.#nextId++;
    const { body } = task;
    const transfer = [ownArrayBuffer(body)].filter((b) => b !== null);
    return new Promise<DecodeResult>((resolve, reject) => thread.post({ id, task }, transfer, { resolve, reject, bytes }));
  }

  /** Share of the lane threads' time spent decoding since they started (0..1). */
  get utilization(): number {
    if (this.#threads.length === 0) return 0;
    let sum = 0;
    for (const t of this.#threads) sum += t.worker.performance.eventLoopUtilization().utilization;
    return sum / this.#threads.length;
  }

  /** Decodes still waiting for a lane thread. */
  get queued(): number {
    let n = 0;
    for (const t of this.#threads) n += t.pending.size;
    return n;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
    for (const t of threads) t.failAll(new Error('decode lane closed'));
  }

  /** The first thread with room under SPILL_BYTES; when none has, the one holding the fewest bytes. */
  #pick(bytes: number): LaneThread | null {
    let best: LaneThread | null = null;
    for (const t of this.#threads) {
      if (t.pendingBytes + bytes <= SPILL_BYTES || t.pendingBytes === 0) return t;
      if (best === null || t.pendingBytes < best.pendingBytes) best = t;
    }
    return best;
  }

  #spawn(): void {
    const t = new LaneThread(this.#file, (dead, why) => {
      const i = this.#threads.indexOf(dead);
      if (i >= 0) this.#threads.splice(i, 1);
      dead.failAll(why);
      // Replaced after a pause, so a thread that cannot start does not spin; meanwhile (or if it
      // was the only one) uploads are decoded inline.
      if (!this.#closed) setTimeout(() => this.#closed || this.#spawn(), RESPAWN_DELAY_MS).unref();
    });
    // An idle lane thread must not keep the process alive on its own (see post()).
    t.worker.unref();
    this.#threads.push(t);
  }
}

/**
 * The forwarder's worker threads: uploads are decoded in the decode lane (lane.ts) and batches
 * compressed in a piscina pool, never on the event loop. Payloads are transferred (moved), never
 * copied, across the thread boundary.
 */
import { compiledWorkerFile } from './worker-file.js';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { decode, type DecodeTask, type DecodeResult } from './decode.js';
import { DecodeLane, WORKER_HEAP_LIMITS } from './lane.js';
import type { BuildTask, BuildResult, BuildFromSpoolTask, BuildFromSpoolResult } from './build.js';
import { ownArrayBuffer } from '../../util/buffers.js';
import { nativeJson } from './json-native.js';

export type { DecodeTask, DecodeResult, DecodeError, DecodeMode, DecodedEntry } from './decode.js';
export type { BuildTask, BuildResult, BuildFromSpoolTask, BuildFromSpoolResult } from './build.js';
export { groupEntries, joinPayloads } from './build.js';
export { inflateRun, stitchGzip } from './stitch.js';
export { deflateRun } from './gzip.js';
export { gzipTrailerLength, likelySealed, sealedCheckTask, sealedRecords } from './decode.js';

/**
 * Plain bodies up to this size are decoded on the calling thread: they are checked in less than
 * what handing them to the decode lane costs the main thread (13-34 µs, depending on how many
 * share a message), and the hop's wait for the lane's answer (~3 ms p50 at the max with 64
 * connections) leaves the upload's path. With native/json.c a 9 KB upload (20 agent records)
 * takes ~8 µs; the JavaScript scanner (no addon built) is several times slower, so without the
 * addon only an agent's handful of records stays here.
 */
export const INLINE_DECODE_MAX_BYTES = nativeJson !== null ? 16 * 1024 : 2 * 1024;

/** A build thread beyond the first ends after this long without a task. */
const POOL_IDLE_TIMEOUT_MS = 30_000;

export class ForwarderPool {
  readonly #pool: Piscina<BuildTask | BuildFromSpoolTask, BuildResult | BuildFromSpoolResult>;
  readonly #lane: DecodeLane;
  readonly threads: number;
  /** Pool tasks handed to piscina and not settled yet: in its queue, queued in a thread, or running. */
  #inFlight = 0;
  /**
   * Thread-milliseconds with a task (min(in flight, threads), integrated over time) up to
   * #countedAt. Not piscina's utilization: it times each task from its dispatch, and with tasks
   * queued in each thread those times overlap (it read 3x under load).
   */
  #busyMs = 0;
  readonly #startedAt = performance.now();
  #countedAt = this.#startedAt;

  constructor(opts: { threads: number }) {
    this.threads = opts.threads > 0 ? opts.threads : availableParallelism();
    this.#pool = new Piscina({
      filename: compiledWorkerFile('worker.js'),
      // One thread always (a cold one costs a module load), the others while there is work for
      // them: large gzip uploads forwarded as they came need no compression here, and an idle
      // isolate still holds tens of MB.
      minThreads: 1,
      maxThreads: this.threads,
      idleTimeout: POOL_IDLE_TIMEOUT_MS,
      // Tasks queued in each thread start as the one before ends, not once the main thread has
      // taken its answer and posted the next: under full syslog load that round trip left the
      // threads idle ~60% of the time while batches waited 40-70 ms behind parse blocks.
      concurrentTasksPerWorker: 4,
      resourceLimits: WORKER_HEAP_LIMITS,
    });
    // As many lane threads as pool threads. Small uploads fill the first one only (lane.ts); the
    // official SDK's 1 MB gzip chunks take 10-15 ms each to inflate and parse, and on 2 cores one
    // lane thread was the limit (a 150 ms queue, the other core half idle).
    this.#lane = new DecodeLane(this.threads);
  }

  /**
   * `task.body` is moved to a decode lane thread (lane.ts): the caller must not use it
   * afterwards. Small plain bodies (an agent's few records) are decoded right here.
   */
  decode(task: DecodeTask): Promise<DecodeResult> {
    if (!task.gzip && task.body.byteLength <= INLINE_DECODE_MAX_BYTES) return Promise.resolve(decode(task));
    return this.#lane.decode(task);
  }

  /** `task.body` is moved to the pool thread. */
  build(task: BuildTask): Promise<BuildResult> {
    return this.#track(this.#pool.run(task, { transferList: [ownArrayBuffer(task.body)].filter((b) => b !== null) })) as Promise<BuildResult>;
  }

  /** The pool thread reads the payloads from the spool's files, joins and gzips them. */
  buildFromSpool(task: BuildFromSpoolTask): Promise<BuildFromSpoolResult> {
    return this.#track(this.#pool.run(task)) as Promise<BuildFromSpoolResult>;
  }

  /**
   * Runs the default export of another compiled worker module (an absolute .js path) in the same
   * threads: other parts of the gateway (syslog parsing) share the pool instead of adding threads.
   */
  runFile<T, R>(filename: string, task: T, transferList: ArrayBuffer[] = []): Promise<R> {
    // The pool is typed for its default module's tasks; this one names its own module.
    const pool = this.#pool as unknown as Piscina<T, R>;
    return this.#track(pool.run(task, { filename, transferList }));
  }

  #track<R>(run: Promise<R>): Promise<R> {
    this.#count();
    this.#inFlight++;
    const settled = (): void => {
      this.#count();
      this.#inFlight--;
    };
    run.then(settled, settled);
    return run;
  }

  /** Adds the busy thread time since the last change of #inFlight. */
  #count(): void {
    const now = performance.now();
    this.#busyMs += Math.min(this.#inFlight, this.threads) * (now - this.#countedAt);
    this.#countedAt = now;
  }

  /** Share of the worker threads' capacity (build pool and decode lane) in use since they started (0..1). */
  get utilization(): number {
    this.#count();
    const elapsed = this.#countedAt - this.#startedAt;
    const pool = elapsed > 0 ? this.#busyMs / (elapsed * this.threads) : 0;
    const lane = this.#lane.size;
    return (pool * this.threads + this.#lane.utilization * lane) / (this.threads + lane);
  }

  /**
   * Tasks waiting: pool tasks (batch builds, syslog parse blocks) beyond one running per thread,
   * and uploads being decoded in the lane. Not piscina's queueSize: with tasks queued in each
   * thread (concurrentTasksPerWorker) that misses up to 4 waiting per thread.
   */
  get queued(): number {
    return Math.max(0, this.#inFlight - this.threads) + this.#lane.queued;
  }

  async close(): Promise<void> {
    await Promise.all([this.#pool.destroy(), this.#lane.close()]);
  }
}

/**
 * The forwarder's worker-thread pool (piscina): decoding uploads and compressing batches never run
 * on the event loop. Payloads are transferred (moved), never copied, across the thread boundary.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { decode, type DecodeTask, type DecodeResult } from './decode.js';
import type { BuildTask, BuildResult } from './build.js';

export type { DecodeTask, DecodeResult, DecodeError, DecodeMode, DecodedEntry } from './decode.js';
export type { BuildTask, BuildResult } from './build.js';
export { groupEntries, joinPayloads } from './build.js';

/**
 * The compiled worker file. Under vitest this module is the .ts source and there is no .js next to
 * it: use the build in dist/ (npm test builds it first).
 */
export function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  const sibling = here.replace(/index\.[jt]s$/, 'worker.js');
  if (existsSync(sibling)) return sibling;
  const built = sibling.replace(/([\\/])src([\\/]forwarder[\\/]pool[\\/])/, '$1dist$2');
  if (existsSync(built)) return built;
  throw new Error(`forwarder pool worker not found (${sibling}, ${built}): run npm run build`);
}

function transferable(u: Uint8Array): ArrayBuffer[] {
  return u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer ? [u.buffer] : [];
}

/** Plain bodies up to this size are decoded on the calling thread (see decode()). */
export const INLINE_DECODE_MAX_BYTES = 16 * 1024;

export class ForwarderPool {
  readonly #pool: Piscina<DecodeTask | BuildTask, DecodeResult | BuildResult>;
  readonly threads: number;

  constructor(opts: { threads: number }) {
    this.threads = opts.threads > 0 ? opts.threads : availableParallelism();
    this.#pool = new Piscina({
      filename: workerFile(),
      minThreads: this.threads,
      maxThreads: this.threads,
      // The threads stay: a cold thread costs a module load on the next upload.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * `task.body` is moved to the pool thread: the caller must not use it afterwards. Small plain
   * bodies (an agent's few records) are decoded right here: parsing 16 KiB takes tens of
   * microseconds, less than the hop to a thread and back, and keeps the pool for real work.
   */
  decode(task: DecodeTask): Promise<DecodeResult> {
    if (!task.gzip && task.body.byteLength <= INLINE_DECODE_MAX_BYTES) return Promise.resolve(decode(task));
    return this.#pool.run(task, { transferList: transferable(task.body) }) as Promise<DecodeResult>;
  }

  /** `task.body` is moved to the pool thread. */
  build(task: BuildTask): Promise<BuildResult> {
    return this.#pool.run(task, { transferList: transferable(task.body) }) as Promise<BuildResult>;
  }

  /** Share of the pool's capacity in use since it started (0..1). */
  get utilization(): number {
    return this.#pool.utilization;
  }

  get queued(): number {
    return this.#pool.queueSize;
  }

  close(): Promise<void> {
    return this.#pool.destroy();
  }
}

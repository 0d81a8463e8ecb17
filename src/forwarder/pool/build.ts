/**
 * Spool entries -> upstream request bodies. grouping (plain arithmetic on entry sizes) runs on
 * the main thread; gzip runs in a pool thread (worker.ts).
 */
import { gzipSync } from 'node:zlib';
import { ownArrayBuffer } from '../../util/buffers.js';

export interface BuildTask {
  readonly kind: 'build';
  /** "[" + payloads.join(",") + "]". */
  readonly body: Uint8Array;
  readonly level: number;
}

export interface BuildResult {
  readonly gz: Uint8Array;
  /** task.body, handed back (moved both ways, never copied): dead letters and the no-gzip fallback need it. */
  readonly raw: Uint8Array;
}

export function build(task: BuildTask): BuildResult {
  const gz = gzipSync(task.body, { level: task.level });
  // gzipSync's result may be a view on a larger buffer; a copy of its own can be moved.
  const own = ownArrayBuffer(gz) ? gz : new Uint8Array(gz);
  return { gz: own, raw: task.body };
}

/**
 * Groups consecutive entries so that each body "[" + join(",") + "]" stays within maxBodyBytes.
 * Every entry fits on its own (ingest refuses records larger than a batch), so no group is empty.
 */
export function groupEntries(sizes: readonly number[], maxBodyBytes: number): Array<[start: number, end: number]> {
  const groups: Array<[number, number]> = [];
  let start = 0;
  let bytes = 2;
  for (let i = 0; i < sizes.length; i++) {
    const add = (i > start ? 1 : 0) + (sizes[i] ?? 0);
    if (i > start && bytes + add > maxBodyBytes) {
      groups.push([start, i]);
      start = i;
      bytes = 2 + (sizes[i] ?? 0);
    } else bytes += add;
  }
  if (sizes.length > start) groups.push([start, sizes.length]);
  return groups;
}

const OPEN = 0x5b; // [
const COMMA = 0x2c;
const CLOSE = 0x5d; // ]

/** One memcpy per payload into a buffer of its own (transferable to a pool thread). */
export function joinPayloads(payloads: readonly Uint8Array[]): Uint8Array {
  let total = 2 + Math.max(0, payloads.length - 1);
  for (const p of payloads) total += p.byteLength;
  const out = new Uint8Array(new ArrayBuffer(total));
  out[0] = OPEN;
  let off = 1;
  payloads.forEach((p, i) => {
    if (i > 0) out[off++] = COMMA;
    out.set(p, off);
    off += p.byteLength;
  });
  out[off] = CLOSE;
  return out;
}

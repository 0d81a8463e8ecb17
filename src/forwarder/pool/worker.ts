/**
 * The pool thread's entry point (piscina `filename`): builds (gzips) upstream batches, from a
 * joined body or read from the spool's files. Uploads are decoded in the decode lane (lane.ts),
 * not here. Results' buffers are transferred, not copied, back to the main thread.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { build, buildFromSpool, type BuildTask, type BuildResult, type BuildFromSpoolTask, type BuildFromSpoolResult } from './build.js';
import { ownArrayBuffer } from '../../util/buffers.js';

function transferring<T>(value: T, buffers: ArrayBuffer[]): T {
  // piscina moves the listed buffers when the returned object carries these two symbols.
  const wrapped = { [transferableSymbol]: buffers, [valueSymbol]: value };
  return move(wrapped as unknown as ArrayBuffer) as unknown as T;
}

export default function run(task: BuildTask | BuildFromSpoolTask): BuildResult | BuildFromSpoolResult {
  const result = task.kind === 'build-spool' ? buildFromSpool(task) : build(task);
  const buffers: ArrayBuffer[] = [];
  for (const u of [result.gz, result.raw]) {
    const b = u === null ? null : ownArrayBuffer(u);
    if (b !== null) buffers.push(b);
  }
  return transferring(result, buffers);
}

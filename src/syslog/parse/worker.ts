/**
 * The pool thread's entry for syslog blocks (piscina `filename` of a run): parses and maps them
 * (task.ts), compresses each entry where it was made (ParseTask.deflateLevel: the spool then
 * holds ~8x less, and the JSON never crosses to the main thread), and moves the payloads back
 * rather than copying them.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { deflateRun } from '../../forwarder/pool/gzip.js';
import { ownArrayBuffer } from '../../util/buffers.js';
import { runParse, type ParseResult, type ParseTask } from './task.js';

export default function run(task: ParseTask): ParseResult {
  const level = task.deflateLevel;
  // Deflated straight from the builder's scratch buffer: the entry's JSON is never copied.
  const result = runParse(task, level === undefined ? {} : { seal: (json) => deflateRun(json, level) });
  if (level !== undefined) for (const o of result.outputs) for (const e of o.entries) e.deflated = true;
  const buffers: ArrayBuffer[] = [];
  for (const o of result.outputs) {
    for (const e of o.entries) {
      const b = ownArrayBuffer(e.payload);
      if (b) buffers.push(b);
    }
  }
  const wrapped = { [transferableSymbol]: buffers, [valueSymbol]: result };
  return move(wrapped) as unknown as ParseResult;
}

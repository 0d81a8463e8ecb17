/**
 * The pool thread's entry for syslog blocks (piscina `filename` of a run): parses and maps them
 * (task.ts) and moves the payloads back rather than copying them.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { runParse, type ParseResult, type ParseTask } from './task.js';

export default function run(task: ParseTask): ParseResult {
  const result = runParse(task);
  const buffers: ArrayBuffer[] = [];
  for (const o of result.outputs) {
    for (const e of o.entries) {
      const b = e.payload.buffer;
      if (b instanceof ArrayBuffer && e.payload.byteOffset === 0 && e.payload.byteLength === b.byteLength) buffers.push(b);
    }
  }
  const wrapped = { [transferableSymbol]: buffers, [valueSymbol]: result };
  return move(wrapped) as unknown as ParseResult;
}

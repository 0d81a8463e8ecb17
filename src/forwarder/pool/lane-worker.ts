/**
 * The decode lane's thread (lane.ts): decodes uploads posted over its parent port and posts the
 * result back, moving the body's buffer (and any buffer decode made) rather than copying it.
 */
import { parentPort } from 'node:worker_threads';
import { decode, type DecodeResult, type DecodeTask } from './decode.js';
import { ownArrayBuffer } from '../../util/buffers.js';

export interface LaneRequest {
  readonly id: number;
  readonly task: DecodeTask;
}

export interface LaneReply {
  readonly id: number;
  readonly result: DecodeResult | null;
  /** decode threw (a bug, not bad input: bad input is a DecodeResult). */
  readonly error?: string;
}

/**
 * Buffers that may be moved back: the body's own (readBody gave it an ArrayBuffer of its own) and
 * any that a view spans whole. Never a slice of Node's shared allocation pool: moving that would
 * detach it under this thread's later Buffer allocations; such payloads are copied instead.
 */
function movable(result: DecodeResult, body: Uint8Array): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const own = ownArrayBuffer(body);
  if (own) out.add(own);
  if (result.ok) {
    for (const e of result.entries) {
      const b = e.payload.buffer;
      if (b === own) continue;
      const whole = ownArrayBuffer(e.payload);
      if (whole) out.add(whole);
    }
  }
  return [...out];
}

/**
 * Answers go back as soon as this many bytes have been decoded since the last message: small
 * uploads are answered together (one message for many), a large one (~3 ms per MB) is not held
 * back until the rest of its batch is done.
 */
const REPLY_AFTER_BYTES = 128 * 1024;

const port = parentPort;
if (port) {
  // A message holds every upload the main thread finished reading in one turn of its event loop.
  port.on('message', (batch: LaneRequest[]) => {
    let replies: LaneReply[] = [];
    let transfer: ArrayBuffer[] = [];
    let decoded = 0;
    const send = (): void => {
      try {
        port.postMessage(replies, transfer);
      } catch {
        // Moving failed (a buffer that cannot be transferred): copy instead, so every upload is answered.
        port.postMessage(replies);
      }
      replies = [];
      transfer = [];
      decoded = 0;
    };
    for (const msg of batch) {
      try {
        const result = decode(msg.task);
        replies.push({ id: msg.id, result });
        transfer.push(...movable(result, msg.task.body));
        decoded += result.ok ? result.decodedBytes : msg.task.body.byteLength;
      } catch (err) {
        replies.push({ id: msg.id, result: null, error: err instanceof Error ? err.message : String(err) });
      }
      if (decoded >= REPLY_AFTER_BYTES) send();
    }
    if (replies.length > 0) send();
  });
}

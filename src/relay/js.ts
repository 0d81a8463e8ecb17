import type { Socket } from 'node:net';
import { stopReading } from '../util/socket.js';

function oneWay(src: Socket, dst: Socket): void {
  src.on('data', (chunk: Buffer) => {
    if (!dst.write(chunk)) stopReading(src);
  });
  dst.on('drain', () => src.resume());
  // Half-close passes on; the other direction keeps flowing.
  src.on('end', () => dst.end());
  // A 'data' listener does not restart a socket paused on purpose (the front door pauses the
  // client once it has read the CONNECT head): flow now, as pipe() would.
  src.resume();
}

/**
 * The JavaScript tunnel relay (relay: js, or the fallback): bytes both ways with backpressure.
 * What a stalled direction (its destination stops reading while its source keeps sending) holds
 * at most: the destination socket's write queue, under its writable high-water mark plus one read
 * (< 16 + 64 KiB on Node 20, < 64 + 64 KiB on Node 22 and 24), and nothing on the source side,
 * which stops reading at once. Kernel socket buffers come on top (see docs/design-notes.md).
 * Errors and timeouts are the caller's: it destroys both sockets.
 */
export function relayJs(client: Socket, upstream: Socket): void {
  oneWay(client, upstream);
  oneWay(upstream, client);
}

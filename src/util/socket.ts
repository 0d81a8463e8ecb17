import type { Socket } from 'node:net';

/** The parts of libuv's stream handle behind net.Socket that stopping a read needs. */
interface ReadableHandle {
  reading?: boolean;
  readStop?: () => number;
}

type WithHandle = Socket & { _handle?: ReadableHandle | null };

/**
 * Stop reading `s` now, not once its readable buffer reaches its high-water mark: a paused
 * net.Socket goes on reading until then (16 KiB on Node 20, 64 KiB on 22 and 24, plus up to one
 * 64 KiB read), and that is memory a stalled tunnel holds for nothing. `resume()` starts reading
 * again (net.Socket restarts a handle that is not reading), as Node's own `onread` sockets do.
 */
export function stopReading(s: Socket): void {
  s.pause();
  const withHandle: WithHandle = s; // _handle is optional: every Socket is one
  const h = withHandle._handle;
  if (h && h.reading === true && typeof h.readStop === 'function') {
    h.reading = false;
    h.readStop();
  }
}

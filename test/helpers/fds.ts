import { readdirSync } from 'node:fs';

/**
 * Open file descriptors of this process (Linux /proc). Includes the one readdir itself opens,
 * a constant offset: compare counts before and after, never absolute values.
 */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Polls until the fd count drops to at most `limit`, and returns the last count (the caller
 * asserts on it). Polling, because no event announces that a descriptor closed: sockets in other
 * components (the echo server, the relay thread) release theirs asynchronously.
 */
export async function waitForFdCount(limit: number, timeoutMs = 2000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = openFdCount();
  while (n > limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    n = openFdCount();
  }
  return n;
}

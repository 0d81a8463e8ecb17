/**
 * The ArrayBuffer a view spans whole, which may be moved (transferList) to another thread; null for
 * a view of part of one, such as a slice of Node's shared Buffer pool: moving that would detach
 * the pool under every other Buffer allocated from it.
 */
export function ownArrayBuffer(u: Uint8Array): ArrayBuffer | null {
  const b = u.buffer;
  return b instanceof ArrayBuffer && u.byteOffset === 0 && u.byteLength === b.byteLength ? b : null;
}

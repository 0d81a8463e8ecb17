/**
 * Reads an upload body under a byte limit and an idle timeout, while it streams: a 100 MB body is
 * cut at the limit (never buffered whole) and a stalled upload is dropped after idleMs.
 */
import type { IncomingMessage } from 'node:http';

export type BodyResult = { readonly ok: true; readonly body: Uint8Array } | { readonly ok: false; readonly why: 'tooLarge' | 'timeout' | 'aborted' };

export function readBody(req: IncomingMessage, limit: number, idleMs: number): Promise<BodyResult> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve({ ok: false, why: 'tooLarge' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const finish = (r: BodyResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('aborted', onAborted);
      req.removeListener('close', onClose);
      if (!r.ok) {
        // Stop reading: the rest of the body is never wanted. The caller answers and closes.
        req.pause();
      }
      resolve(r);
    };
    const onTimeout = (): void => finish({ ok: false, why: 'timeout' });
    const timer = setTimeout(onTimeout, idleMs);
    const onData = (chunk: Buffer): void => {
      total += chunk.byteLength;
      if (total > limit) {
        finish({ ok: false, why: 'tooLarge' });
        return;
      }
      chunks.push(chunk);
      timer.refresh();
    };
    const onEnd = (): void => {
      // Own ArrayBuffer (not Node's shared pool) so it can be moved to a pool thread.
      const body = new Uint8Array(new ArrayBuffer(total));
      let off = 0;
      for (const c of chunks) {
        body.set(c, off);
        off += c.byteLength;
      }
      finish({ ok: true, body });
    };
    const onError = (): void => finish({ ok: false, why: 'aborted' });
    const onAborted = (): void => finish({ ok: false, why: 'aborted' });
    const onClose = (): void => {
      if (!req.complete) finish({ ok: false, why: 'aborted' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
    req.on('close', onClose);
  });
}

/** Raw-socket clients for what real clients will not send (malformed requests, odd framing). */
import net, { type Socket } from 'node:net';

/** Send bytes, collect everything until the server closes (or `timeoutMs`), return it as text. */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(data));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: false });
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed: true });
    });
  });
}

export function statusOf(responseText: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(responseText);
  return m ? Number(m[1]) : 0;
}

/**
 * Open a CONNECT tunnel; resolves once the proxy's response head arrived, with the status and the
 * socket (ready for tunnelled bytes when status is 200). `extra` is sent in the same write as the
 * CONNECT (like a ClientHello sent without waiting).
 */
export function openTunnel(port: number, authority: string, extra?: Buffer): Promise<{ status: number; head: string; socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      socket.removeListener('error', reject);
      socket.removeListener('close', onClose);
      socket.pause();
      const head = buf.subarray(0, end).toString('latin1');
      resolve({ status: statusOf(head), head, socket, rest: buf.subarray(end + 4) });
    };
    // Closed before a whole response head (a proxy or balancer hanging up): fail now, not hang.
    const onClose = (): void => reject(new Error(`connection closed before the response head (${buf.length} bytes received)`));
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', onClose);
    socket.once('connect', () => {
      const req = Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, 'latin1');
      socket.write(extra ? Buffer.concat([req, extra]) : req);
    });
  });
}

/**
 * Read exactly n bytes (after `initial`) from a paused socket. A failure says how the stream
 * ended: a FIN ('end'), or a close, with the socket error if there was one (a reset).
 */
export function readBytes(socket: Socket, n: number, initial: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (initial.length >= n) return resolve(initial.subarray(0, n));
    // Kept as a list and joined once: concatenating per chunk copies O(n²) bytes, which for the
    // tens of MiB a held-up tunnel holds on some machines took longer than the test's timeout.
    const chunks = [initial];
    let received = initial.length;
    let errCode = '';
    const onData = (c: Buffer): void => {
      chunks.push(c);
      received += c.length;
      if (received >= n) {
        cleanup();
        resolve(Buffer.concat(chunks, received).subarray(0, n));
      }
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      errCode = err.code ?? err.message;
    };
    const ended = (how: 'end' | 'close'): void => {
      cleanup();
      reject(new Error(`stream ended (${how}${errCode ? `, ${errCode}` : ''}) after ${received} of ${n} bytes, ${socket.bytesWritten} written`));
    };
    const onFin = (): void => ended('end');
    const onClose = (): void => ended('close');
    const cleanup = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onFin);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
      socket.pause();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.once('end', onFin);
    socket.once('close', onClose);
    socket.resume();
  });
}

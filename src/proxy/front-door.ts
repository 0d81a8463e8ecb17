import type { Socket } from 'node:net';
import { Errors, withDetail, type Refusal } from '../errors/catalogue.js';
import { headRefusal, isHeadFault, readFieldSection, readRequestLine, type RequestLine } from './request-line.js';

/** Where the first request of a connection goes once its head is read. */
export interface FrontDoorSink {
  /** A complete, valid head that the proxy answers itself (CONNECT, or any request on a refused connection). */
  head(socket: Socket, method: string, target: string, rest: Buffer, head: Buffer): void;
  /** A valid request line of a plain-HTTP request: its bytes are back on the socket for Node's HTTP server. */
  http(socket: Socket): void;
  /** A head that was refused (syntax, version, size, timeout) before anything else happened. */
  refuse(socket: Socket, method: string, target: string, r: Refusal): void;
}

export interface FrontDoorOptions {
  maxHeaderBytes: number;
  timeoutMs: number;
  /** Read the whole head of any method (a refused connection answers after it), not only of CONNECT. */
  wholeHead: boolean;
}

/**
 * Read the first request head of a connection on the raw socket, before Node's HTTP parser sees
 * a byte, and check it strictly (src/proxy/request-line.ts). A CONNECT is answered from here
 * without an IncomingMessage; a plain-HTTP request is handed to the HTTP server with its bytes
 * put back (`unshift`), after only its request line was checked. Nothing is dialled before the
 * head is whole and valid.
 */
export function readFirstHead(socket: Socket, opts: FrontDoorOptions, sink: FrontDoorSink): void {
  /** The bytes so far: the first chunk itself (the usual case: the whole head in one read), else a view of `store`. */
  let buf: Buffer | null = null;
  /** Grown by copying each new chunk once, so a head sent a byte at a time costs linear time. */
  let store: Buffer | null = null;
  let line: RequestLine | null = null;
  /** Where the field lines not yet checked begin. */
  let fieldsFrom = 0;

  const detach = (): void => {
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('timeout', onTimeout);
    socket.removeListener('error', onError);
    socket.setTimeout(0);
  };
  const refuse = (r: Refusal): void => {
    detach();
    // Whatever else the client sends is read and dropped, so the close does not turn into a reset.
    socket.on('error', onError);
    socket.resume();
    sink.refuse(socket, line?.method ?? '', line?.target ?? '', r);
  };
  const step = (data: Buffer): void => {
    if (line === null) {
      const l = readRequestLine(data, opts.maxHeaderBytes);
      if (l === null) return;
      if (isHeadFault(l)) return refuse(headRefusal(l, true));
      line = l;
      fieldsFrom = l.end;
      if (line.method !== 'CONNECT' && !opts.wholeHead) {
        detach();
        socket.pause();
        socket.unshift(data);
        return sink.http(socket);
      }
    }
    const scan = readFieldSection(data, fieldsFrom, opts.maxHeaderBytes);
    if (isHeadFault(scan)) return refuse(headRefusal(scan, false));
    if ('resumeAt' in scan) {
      fieldsFrom = scan.resumeAt;
      return;
    }
    detach();
    // Bytes after the head stay unread until the tunnel (or the refusal) takes the socket.
    socket.pause();
    sink.head(socket, line.method, line.target, data.subarray(scan.end), data.subarray(0, scan.end));
  };
  const append = (chunk: Buffer): Buffer => {
    if (buf === null) return chunk;
    const len = buf.length;
    if (store === null || store.length - len < chunk.length) {
      // Room for the whole head limit at once; more only for bytes that came after the head.
      const grown = Buffer.allocUnsafe(Math.max(opts.maxHeaderBytes + 1, len + chunk.length));
      buf.copy(grown, 0);
      store = grown;
    }
    chunk.copy(store, len);
    return store.subarray(0, len + chunk.length);
  };
  function onData(chunk: Buffer): void {
    buf = append(chunk);
    // Nothing can be decided before a line ends (or the head outgrows its limit).
    if (chunk.indexOf(0x0a) < 0 && buf.length <= opts.maxHeaderBytes) return;
    step(buf);
  }
  function onEnd(): void {
    // The client finished sending before its head was whole.
    if (buf === null) {
      detach();
      socket.destroy();
      return;
    }
    refuse(withDetail(Errors.PARSE, 'connection closed before the request head ended'));
  }
  function onTimeout(): void {
    refuse(Errors.HEADER_TIMEOUT);
  }
  function onError(): void {
    socket.destroy();
  }

  socket.on('error', onError);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('timeout', onTimeout);
  socket.setTimeout(opts.timeoutMs);
}

/**
 * Destination servers for integration tests. Each listens on 127.0.0.1 port 0; close() stops
 * listening and destroys every open connection, so tests never wait on keep-alive sockets.
 */
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { testCA } from './tls.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface TestServer {
  port: number;
  /** Connections accepted so far (TCP level). */
  readonly connections: number;
  /** Resolves once every accepted connection has closed (at once when none is open). */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

export interface TestHttpsServer extends TestServer {
  caPem: string;
  caFile: string;
}

/** 200 with `{ ok, method, url, host, bodyBytes }` once the request body has been read. */
export const defaultHandler: Handler = (req, res) => {
  let bodyBytes = 0;
  req.on('data', (chunk: Buffer) => {
    bodyBytes += chunk.length;
  });
  req.on('end', () => {
    const body = JSON.stringify({ ok: true, method: req.method, url: req.url, host: req.headers.host, bodyBytes });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  req.on('error', () => res.destroy());
};

function noop(): void {}

/** Tracks sockets, listens on 127.0.0.1:0 and builds the close() that destroys them. */
async function listen(server: net.Server, connectionEvent = 'connection'): Promise<TestServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let whenEmpty: Array<() => void> = [];
  server.on(connectionEvent, (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', noop);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size > 0) return;
      for (const resolve of whenEmpty) resolve();
      whenEmpty = [];
    });
  });
  server.on('error', noop);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    get connections() {
      return connections;
    },
    allClosed() {
      if (sockets.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => whenEmpty.push(resolve));
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

export async function startHttpServer(handler: Handler = defaultHandler): Promise<TestServer> {
  const server = http.createServer(handler);
  server.on('clientError', (_err, socket) => socket.destroy());
  return listen(server);
}

export async function startHttpsServer(opts: { names: string[]; handler?: Handler }): Promise<TestHttpsServer> {
  const ca = await testCA();
  const { keyPem, certPem } = await ca.issue(opts.names);
  const server = https.createServer({ key: keyPem, cert: certPem }, opts.handler ?? defaultHandler);
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('tlsClientError', noop);
  // Track raw TCP sockets: a handshake that never completes must still be destroyed by close().
  const base = await listen(server, 'connection');
  return Object.assign(base, { caPem: ca.caPem, caFile: ca.caFile });
}

/**
 * Echoes bytes back. Half-close aware: when the client ends its side, the echo finishes writing
 * what it has and then ends its side too (pipe's default end: true).
 */
export async function startTcpEcho(): Promise<TestServer & { backpressured(): Promise<void> }> {
  let waiters: Array<() => void> = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket);
    // pipe() pauses the socket's reading when its own write returns false: the answer is not
    // being taken off its hands (by the client, through the proxy, and every buffer between).
    socket.on('pause', () => {
      for (const resolve of waiters) resolve();
      waiters = [];
    });
  });
  const base = await listen(server);
  return Object.assign(base, { backpressured: () => new Promise<void>((resolve) => waiters.push(resolve)) });
}

/** A destination that speaks first (SMTP/SSH style), then reads until the client ends its side. */
export async function startBannerServer(text: string): Promise<TestServer> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.write(text);
    socket.resume();
    socket.on('end', () => socket.end());
  });
  return listen(server);
}

/**
 * A listener (default 127.0.0.1, port 0) whose connects hang: its accept queue (backlog 1) is filled and it never
 * accepts, because it lives in a worker thread blocked in Atomics.wait. Linux then drops further
 * SYNs, so a connect to `port` neither succeeds nor is refused. close() wakes the worker, which
 * closes the listener, and destroys the filler sockets.
 */
export async function startBlackhole(opts: { host?: string; port?: number } = {}): Promise<{ port: number; close(): Promise<void> }> {
  const host = opts.host ?? '127.0.0.1';
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ host: workerData.host, port: workerData.port, backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      // Block this thread's event loop: nothing is ever accepted while we wait.
      Atomics.wait(workerData.signal, 0, 0);
      server.close();
      parentPort.close();
    });
    server.on('connection', (s) => s.destroy());
    `,
    { eval: true, workerData: { signal, host, port: opts.port ?? 0 } },
  );
  worker.on('error', noop);
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });

  // Fill the accept queue: connect until one attempt neither connects nor fails quickly.
  const fillers: Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const s = net.connect({ host, port });
    s.on('error', noop);
    fillers.push(s);
    const connected = await new Promise<boolean>((resolve) => {
      // A bounded negative check: a connect still pending after 150 ms means the queue is full.
      const t = setTimeout(() => resolve(false), 150);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!connected) break;
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= (async () => {
        for (const s of fillers) s.destroy();
        Atomics.store(signal, 0, 1);
        Atomics.notify(signal, 0);
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => void worker.terminate().then(() => resolve()), 2000);
          worker.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
        });
      })();
      return closing;
    },
  };
}

/**
 * A port nobody listens on (bound, then released), below the kernel's ephemeral range. Tests bind
 * it later, some of them again after killing the process that held it (a restart on the same
 * port); an ephemeral port would be free for any outgoing connection in between, and one took it
 * once in CI (EADDRINUSE on the restart). Below ip_local_port_range no connect() picks it.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const candidate = low - 1 - Math.floor(Math.random() * Math.min(12_000, low - 1025));
    const port = await tryBind(candidate);
    if (port) return port;
  }
  return (await tryBind(0))!;
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

/** Binds 127.0.0.1:port (0 = any) and releases it: the port, or undefined when it is taken. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? res(undefined) : rej(err)));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const bound = (s.address() as net.AddressInfo).port;
      s.close(() => res(bound));
    });
  });
}

/**
 * The syslog listeners: TCP and TLS (RFC 6587 framing detected per connection, RFC 5425), RELP
 * (plain or TLS; the per-connection protocol is relp.ts) and UDP (RFC 5426: one message per
 * datagram). Each connection has a SourceLane; every socket has an 'error' handler and the idle
 * timeout; the connection cap is counted at accept.
 */
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { SyslogConfig, SyslogListenerConfig } from '../config/types.js';
import { parseListenAddress } from '../config/listen.js';
import { Events } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { listenStartError } from '../gateway/errors.js';
import { Framer, FramingError } from './framing.js';
import { RateLimitedLog, SourceLane, type Pipeline } from './pipeline.js';
import { plainIp, type SyslogRoutes } from './routes.js';
import { RelpSession } from './relp.js';
import type { SyslogMetrics } from './metrics.js';
import type { ParseBlock } from './parse/task.js';

/** A connection's whole frames are handed on at this size even within one event-loop turn. */
const BLOCK_BYTES = 256 * 1024;
/** TLS handshakes must finish in this time (a stalled client holds a slot otherwise). */
const HANDSHAKE_MS = 10_000;
/** UDP bytes in the pipeline (parsing or waiting for the spool) past which datagrams are dropped. */
const UDP_INFLIGHT_MAX_BYTES = 32 * 1024 * 1024;

export interface ListenerDeps {
  config: () => SyslogConfig;
  routes: () => SyslogRoutes;
  pipeline: Pipeline;
  metrics: SyslogMetrics | null;
  logger: Logger;
  /** Connections open across all stream listeners (the cap is gateway-wide). */
  connections: { open: number };
}

export interface Listener {
  readonly name: string;
  readonly protocol: SyslogListenerConfig['protocol'];
  readonly address: { host: string; port: number };
  readonly open: number;
  readonly paused: number;
  kernelDrops(): number | null;
  close(deadlineMs: number): Promise<void>;
}

export async function startListener(cfg: SyslogListenerConfig, index: number, deps: ListenerDeps): Promise<Listener> {
  return cfg.protocol === 'udp' ? startUdp(cfg, index, deps) : startStream(cfg, index, deps);
}

/** A stream connection as the listener drains it. */
interface Conn {
  socket: Socket;
  lane: SourceLane;
  /** Stop reading; hand what was read to the lane. */
  stopReading(): void;
  /** After the lane is idle (or the deadline): end the connection. */
  finish(): Promise<void>;
}

async function startStream(cfg: SyslogListenerConfig, index: number, deps: ListenerDeps): Promise<Listener> {
  const { logger, metrics } = deps;
  const name = cfg.name;
  const conns = new Set<Conn>();
  const tooLong = new RateLimitedLog(logger, Events.SYSLOG_TOO_LONG, `syslog messages over syslog.maxMessageBytes were truncated`);
  const tlsFail = new RateLimitedLog(logger, Events.SYSLOG_TLS, 'syslog TLS handshakes failed');
  let accepting = true;

  const onRelp = (socket: Socket): void => {
    const sourceIp = plainIp(socket.remoteAddress);
    const session = new RelpSession(socket, {
      pipeline: deps.pipeline,
      listener: name,
      sourceIp,
      maxMessageBytes: deps.config().maxMessageBytes,
      idleTimeoutMs: () => deps.config().idleTimeoutMs,
      candidates: () => deps.routes().candidates(name, sourceIp),
      metrics,
      logger,
      tooLong,
    });
    const conn: Conn = { socket, lane: session.lane, stopReading: () => session.stopReading(), finish: () => session.finish() };
    conns.add(conn);
    socket.on('close', () => void session.lane.idle().then(() => conns.delete(conn)));
  };

  const onSecure = (socket: Socket): void => {
    if (cfg.protocol === 'relp') return onRelp(socket);
    const sourceIp = plainIp(socket.remoteAddress);
    const framer = new Framer(deps.config().maxMessageBytes);
    let counted = { truncated: 0, empty: 0 };
    let flushing: NodeJS.Immediate | null = null;
    const lane = new SourceLane(deps.pipeline, name, {
      pause: () => {
        socket.pause();
        // A paused connection is not idle: the gateway is the one not reading.
        socket.setTimeout(0);
      },
      resume: () => {
        if (socket.destroyed) return;
        socket.setTimeout(deps.config().idleTimeoutMs);
        socket.resume();
      },
    });
    const conn: Conn = {
      socket,
      lane,
      stopReading: () => {
        socket.pause();
        if (flushing) clearImmediate(flushing);
        flush();
      },
      finish: () => {
        // The drain deadline passed: blocks still waiting for room are given up (counted, logged).
        lane.stopping = true;
        socket.destroy();
        return Promise.resolve();
      },
    };
    conns.add(conn);
    const flush = (): void => {
      flushing = null;
      const block = framer.take();
      const c = framer.counters;
      if (c.truncated !== counted.truncated) {
        metrics?.truncated.inc({ listener: name }, c.truncated - counted.truncated);
        tooLong.hit(c.truncated - counted.truncated, { listener: name, code: 'PCL_ERR_SYSLOG_TOO_LONG', maxMessageBytes: deps.config().maxMessageBytes });
      }
      if (c.empty !== counted.empty) metrics?.emptyFrames.inc({ listener: name }, c.empty - counted.empty);
      counted = { ...c };
      if (!block) return;
      const parseBlock: ParseBlock = { mode: block.mode, bytes: block.bytes, sourceIp, candidates: deps.routes().candidates(name, sourceIp) };
      conn.lane.push([parseBlock]);
    };
    socket.setTimeout(deps.config().idleTimeoutMs);
    socket.on('timeout', () => {
      metrics?.refused.inc({ listener: name, reason: 'idle_timeout' });
      logger.debug({ event: Events.SYSLOG_IDLE, code: 'PCL_ERR_SYSLOG_IDLE', listener: name, source: sourceIp }, 'idle syslog connection closed');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      metrics?.bytes.inc({ listener: name }, chunk.length);
      try {
        framer.push(chunk);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        metrics?.refused.inc({ listener: name, reason: 'framing' });
        logger.warn(
          { event: Events.SYSLOG_FRAMING, code: 'PCL_ERR_SYSLOG_FRAMING', listener: name, source: sourceIp, detail: err.message },
          'syslog stream lost its framing: connection closed',
        );
        flush();
        socket.destroy();
        return;
      }
      if (framer.ready >= BLOCK_BYTES) flush();
      else if (framer.ready > 0) flushing ??= setImmediate(flush);
    });
    socket.on('end', () => {
      // The sender finished: its last line may have no LF.
      const { unterminated } = framer.end();
      if (unterminated > 0) metrics?.dropped.inc({ listener: name, reason: 'incomplete' });
      if (flushing) clearImmediate(flushing);
      flush();
      void conn.lane.idle().then(() => socket.end());
    });
    socket.on('error', (err) => {
      logger.debug({ event: Events.SYSLOG_SOCKET_ERROR, listener: name, source: sourceIp, err }, 'syslog connection error');
    });
    socket.on('close', () => {
      if (flushing) {
        clearImmediate(flushing);
        flush();
      }
      // A sender closing is not the gateway stopping: what was read (TCP acknowledged it) is still
      // spooled, waiting for room as long as it takes. Meanwhile the closed connection keeps its
      // slot under syslog.maxConnections, so connect-send-close senders cannot pile up read data
      // in memory while the spool is full.
      const held = conn.lane.busy;
      if (held) deps.connections.open++;
      void conn.lane.idle().then(() => {
        if (held) deps.connections.open--;
        conns.delete(conn);
      });
    });
  };

  const onConnection = (socket: Socket): void => {
    socket.on('error', () => undefined); // raw socket errors before TLS: 'close' follows
    const cfgNow = deps.config();
    if (!accepting || deps.connections.open >= cfgNow.maxConnections) {
      if (accepting) {
        metrics?.refused.inc({ listener: name, reason: 'connection_limit' });
        logger.warn(
          { event: Events.SYSLOG_CONN_LIMIT, code: 'PCL_ERR_SYSLOG_CONN_LIMIT', listener: name, maxConnections: cfgNow.maxConnections },
          'syslog connection closed at accept: syslog.maxConnections reached',
        );
      }
      socket.destroy();
      return;
    }
    deps.connections.open++;
    metrics?.connectionsTotal.inc({ listener: name });
    socket.once('close', () => deps.connections.open--);
    if (!tls) onSecure(socket);
  };

  // A tls listener has TLS settings (the config checks say so); a relp listener may.
  const tls = cfg.tls;
  if (cfg.protocol === 'tls' && !tls)
    throw listenStartError(`syslog.listeners[${index}].tls`, { host: '', port: 0 }, new Error('tls listener without tls settings'));
  let server: Server;
  if (tls) {
    let options;
    try {
      options = {
        cert: readFileSync(tls.certFile),
        key: readFileSync(tls.keyFile),
        minVersion: 'TLSv1.2' as const,
        handshakeTimeout: HANDSHAKE_MS,
        ...(tls.clientCaFile ? { ca: readFileSync(tls.clientCaFile), requestCert: true, rejectUnauthorized: tls.requireClientCert } : {}),
      };
    } catch (err) {
      throw listenStartError(`syslog.listeners[${index}].tls`, { host: '', port: 0 }, err);
    }
    const tlsServer = createTlsServer(options, (s: TLSSocket) => onSecure(s));
    tlsServer.on('tlsClientError', (err, s) => {
      metrics?.refused.inc({ listener: name, reason: 'tls_handshake' });
      tlsFail.hit(1, { listener: name, code: 'PCL_ERR_SYSLOG_TLS', source: plainIp(s.remoteAddress), detail: err.message });
      s.destroy();
    });
    server = tlsServer;
  } else {
    server = createTcpServer();
  }
  server.on('connection', onConnection);
  server.on('error', (err) => logger.error({ event: Events.SYSLOG_SOCKET_ERROR, listener: name, err }, 'syslog listener error'));
  const where = parseListenAddress(cfg.listen);
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => reject(listenStartError(`syslog.listeners[${index}].listen`, where, err));
    server.once('error', fail);
    server.listen({ host: where.host, port: where.port }, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address();
  const address = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : where;

  return {
    name,
    protocol: cfg.protocol,
    address,
    get open() {
      return conns.size;
    },
    get paused() {
      let n = 0;
      for (const c of conns) if (c.lane.paused) n++;
      return n;
    },
    kernelDrops: () => null,
    async close(deadlineMs) {
      accepting = false;
      const closed = new Promise<void>((r) => server.close(() => r()));
      // Stop reading; what was read is spooled (RELP: and acknowledged), then the connections close.
      for (const c of conns) c.stopReading();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...conns].map((c) => c.lane.idle())), new Promise<void>((r) => (timer = setTimeout(r, deadlineMs)))]);
      clearTimeout(timer);
      await Promise.all([...conns].map((c) => c.finish()));
      await closed;
    },
  };
}

async function startUdp(cfg: SyslogListenerConfig, index: number, deps: ListenerDeps): Promise<Listener> {
  const { logger, metrics } = deps;
  const name = cfg.name;
  const where = parseListenAddress(cfg.listen);
  const conf = deps.config();
  const socket: UdpSocket = createSocket({
    type: where.host.includes(':') ? 'udp6' : 'udp4',
    ...(conf.udpReceiveBufferBytes > 0 ? { recvBufferSize: conf.udpReceiveBufferBytes } : {}),
  });
  const drops = new RateLimitedLog(logger, Events.SYSLOG_UDP_DROPS, 'syslog UDP datagrams dropped (spool full or pipeline full)');
  const tooLong = new RateLimitedLog(logger, Events.SYSLOG_TOO_LONG, 'syslog UDP datagrams over syslog.maxMessageBytes were truncated');
  let inflightBytes = 0;
  let pending = new Map<string, Buffer[]>();
  let pendingBytes = 0;
  let flushing: NodeJS.Immediate | null = null;
  let closed = false;
  let tail: Promise<void> = Promise.resolve();
  const inflight = new Set<Promise<void>>();

  const flush = (): void => {
    flushing = null;
    if (pending.size === 0) return;
    const groups = pending;
    const bytes = pendingBytes;
    pending = new Map();
    pendingBytes = 0;
    const blocks: ParseBlock[] = [];
    for (const [ip, parts] of groups) {
      blocks.push({ mode: 'octet', bytes: Buffer.concat(parts), sourceIp: ip, candidates: deps.routes().candidates(name, ip) });
    }
    inflightBytes += bytes;
    const parsed = deps.pipeline.parse(name, blocks);
    parsed.catch(() => undefined);
    // Queued for the spool in arrival order; the next flush's blocks do not wait for this one's fdatasync.
    const queued = tail.then(async (): Promise<{ durable: Promise<boolean> }> => {
      try {
        return await deps.pipeline.enqueue(
          name,
          await parsed,
          () => undefined,
          () => closed,
        );
      } catch (err) {
        deps.pipeline.reportPoolError(name, `${blocks.length} UDP block(s)`, err);
        return { durable: Promise.resolve(false) };
      }
    });
    tail = queued.then(() => undefined);
    const step = queued
      .then((q) => q.durable)
      .then(() => undefined)
      .finally(() => {
        inflightBytes -= bytes;
      });
    inflight.add(step);
    void step.then(() => inflight.delete(step));
  };

  socket.on('message', (msg, rinfo) => {
    metrics?.bytes.inc({ listener: name }, msg.length);
    if (closed) return;
    // UDP cannot push back: past the pipeline's budget or with the spool full, the datagram is dropped, counted.
    if (inflightBytes + pendingBytes > UDP_INFLIGHT_MAX_BYTES || !deps.pipeline.intake.hasRoom()) {
      metrics?.dropped.inc({ listener: name, reason: 'udp_full' });
      drops.hit(1, { listener: name, code: 'PCL_ERR_SYSLOG_UDP_DROP' });
      return;
    }
    if (msg.length === 0) {
      metrics?.emptyFrames.inc({ listener: name });
      return;
    }
    const max = deps.config().maxMessageBytes;
    let body = msg;
    if (body.length > max) {
      metrics?.truncated.inc({ listener: name });
      tooLong.hit(1, { listener: name, code: 'PCL_ERR_SYSLOG_TOO_LONG', maxMessageBytes: max });
      body = body.subarray(0, max);
    }
    // Packed as octet-counted frames: the pool splits them the same way as a TCP stream.
    const ip = plainIp(rinfo.address);
    let list = pending.get(ip);
    if (!list) pending.set(ip, (list = []));
    const header = Buffer.from(`${body.length} `, 'latin1');
    list.push(header, body);
    pendingBytes += header.length + body.length;
    if (pendingBytes >= BLOCK_BYTES) flush();
    else flushing ??= setImmediate(flush);
  });
  socket.on('error', (err) => logger.error({ event: Events.SYSLOG_SOCKET_ERROR, listener: name, err }, 'syslog UDP socket error'));

  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => reject(listenStartError(`syslog.listeners[${index}].listen`, where, err));
    socket.once('error', fail);
    socket.bind({ address: where.host, port: where.port }, () => {
      socket.off('error', fail);
      resolve();
    });
  });
  const a = socket.address();
  const address = { host: a.address, port: a.port };
  const family = where.host.includes(':') ? 6 : 4;

  return {
    name,
    protocol: 'udp',
    address,
    open: 0,
    paused: 0,
    kernelDrops: () => udpKernelDrops(family, address.port),
    async close(deadlineMs) {
      if (flushing) clearImmediate(flushing);
      flush();
      closed = true;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...inflight]), new Promise<void>((r) => (timer = setTimeout(r, deadlineMs)))]);
      clearTimeout(timer);
      await new Promise<void>((r) => socket.close(() => r()));
    },
  };
}

/**
 * The kernel's drop counter of the UDP socket bound to `port` (the last column of /proc/net/udp
 * or udp6): datagrams that arrived while its receive buffer was full. null when unreadable.
 */
export function udpKernelDrops(family: 4 | 6, port: number): number | null {
  let text: string;
  try {
    text = readFileSync(family === 6 ? '/proc/net/udp6' : '/proc/net/udp', 'latin1');
  } catch {
    return null;
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let total: number | null = null;
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    if (!local?.endsWith(`:${hexPort}`)) continue;
    const drops = Number(cols[cols.length - 1]);
    if (Number.isFinite(drops)) total = (total ?? 0) + drops;
  }
  return total;
}

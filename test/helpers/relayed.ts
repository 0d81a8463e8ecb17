/**
 * Tunnels handed straight to the native relay (src/relay), without the proxy around them, for
 * tests of the relay's own lifecycle: a real client socket on one side, a real TCP echo server on
 * the other, the two sockets in between owned by the relay thread.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { nativeRelayStatus, relayTunnel, type RelayEnd, type RelayedTunnel } from '../../src/relay/index.js';
import { ADDON_PATH } from '../../src/relay/probe.js';
import { readBytes } from './raw.js';
import { startTcpEcho, type TestServer } from './servers.js';

/** Off CI a machine without a compiler has no native relay; on CI it must be there (test/relay/native.test.ts). */
export const nativeRelayExpected = process.env.CI === 'true' || nativeRelayStatus().available;

/** What the relay sends the client first, standing in for the proxy's 200 answer. */
export const GREETING = Buffer.from('+');

export interface RelayedPair {
  /** The test's own client: what a proxy user holds. */
  user: Socket;
  /** The two sockets the relay owns: the accepted client connection and the one to the echo server. */
  client: Socket;
  upstream: Socket;
  relayed: RelayedTunnel;
}

/** The addon itself, for the one thing the module does not expose: how many ends wait for delivery. */
export function pendingEnds(): number {
  const addon = createRequire(import.meta.url)(ADDON_PATH) as { pendingEnds(): number };
  return addon.pendingEnds();
}

/**
 * Block this thread (so no end can be delivered) until the relay thread has reported `n` ends, at
 * most `timeoutMs`. Those ends then reach JavaScript in one call, as one batch.
 */
export function holdUntilPendingEnds(n: number, timeoutMs = 5_000): number {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + timeoutMs;
  let seen = pendingEnds();
  while (seen < n && Date.now() < deadline) {
    Atomics.wait(cell, 0, 0, 1); // give the relay thread the CPU without returning to the event loop
    seen = pendingEnds();
  }
  return seen;
}

export interface RelayBench {
  echo: TestServer;
  front: net.Server;
  /** Hand a new tunnel to the relay, check it carries bytes both ways, return it. */
  open(onEnd: (end: RelayEnd, pair: RelayedPair) => void): Promise<RelayedPair>;
  close(): Promise<void>;
}

export async function startRelayBench(): Promise<RelayBench> {
  const echo = await startTcpEcho();
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  const accepted: Socket[] = [];
  const waiting: Array<(s: Socket) => void> = [];
  front.on('connection', (s: Socket) => {
    const w = waiting.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const port = (front.address() as net.AddressInfo).port;
  const everything = new Set<Socket>();

  const open = async (onEnd: (end: RelayEnd, pair: RelayedPair) => void): Promise<RelayedPair> => {
    const nextAccepted = new Promise<Socket>((resolve) => {
      const s = accepted.shift();
      if (s) resolve(s);
      else waiting.push(resolve);
    });
    const user = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    user.on('error', () => {});
    await once(user, 'connect');
    const client = await nextAccepted;
    const upstream = net.connect({ port: echo.port, host: '127.0.0.1', allowHalfOpen: true });
    upstream.on('error', () => {});
    client.on('error', () => {});
    await once(upstream, 'connect');
    for (const s of [user, client, upstream]) everything.add(s);
    const pair = { user, client, upstream } as RelayedPair;
    const relayed = relayTunnel(client, upstream, { idleMs: 0, toClient: GREETING, toUpstream: Buffer.alloc(0) }, (end) => onEnd(end, pair));
    if (typeof relayed === 'string')
      throw new Error(`the native relay did not take the tunnel: ${relayed} (${nativeRelayStatus().reason || 'no reason given'})`);
    pair.relayed = relayed;
    user.write('ping');
    const back = await readBytes(user, GREETING.length + 4);
    if (back.toString() !== `${GREETING.toString()}ping`) throw new Error(`relay answered ${JSON.stringify(back.toString())}`);
    return pair;
  };

  const close = async (): Promise<void> => {
    for (const s of everything) s.destroy();
    front.close();
    await echo.close();
  };
  return { echo, front, open, close };
}

/** Resolves when the socket has closed (at once if it already has). */
export function closed(s: Socket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

/** Resolves when the peer has finished the connection (end of stream, or a reset). */
export function hungUp(s: Socket): Promise<void> {
  if (s.readableEnded || s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('end', () => resolve());
    s.once('close', () => resolve());
    s.resume();
  });
}

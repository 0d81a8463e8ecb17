import net from 'node:net';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { dial, dialFirst, toResolved } from '../../src/dial/index.js';
import { PortcullisError } from '../../src/util/errors.js';
import { openFdCount, waitForFdCount } from '../helpers/fds.js';
import { startBlackhole, startTcpEcho } from '../helpers/servers.js';
import { codeOf } from '../helpers/errors.js';

const V4 = toResolved('127.0.0.1');
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function track(socket: Socket): Socket {
  socket.on('error', () => {});
  cleanups.push(() => socket.destroy());
  return socket;
}

/** A port on 127.0.0.1 with nothing listening (bound then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  s.on('error', () => {});
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
}

describe('dial', () => {
  it('connects to a listening 127.0.0.1 port, leaves no listeners of its own, and carries data both ways', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    const socket = track(await dial(V4, echo.port, { timeoutMs: 2000 }));
    // track() added one 'error' listener; count before it is what dial left behind.
    expect(socket.listenerCount('error')).toBe(1);
    for (const ev of ['connect', 'ready', 'timeout', 'close', 'lookup', 'data']) {
      expect(socket.listenerCount(ev), ev).toBe(0);
    }
    expect(socket.remoteAddress).toBe('127.0.0.1');
    expect(socket.remotePort).toBe(echo.port);
    expect(socket.timeout).toBeUndefined();
    expect(socket.allowHalfOpen).toBe(true);

    // Half-close: we end our side, the echo still answers, then ends its side.
    const received: Buffer[] = [];
    socket.on('data', (b: Buffer) => received.push(b));
    const ended = new Promise<void>((r) => socket.once('end', r));
    socket.end('hello tunnel');
    await ended;
    expect(Buffer.concat(received).toString()).toBe('hello tunnel');
  });

  it('leaves exactly zero listeners when nothing else was attached', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    const socket = await dial(V4, echo.port, { timeoutMs: 2000 });
    expect(socket.listenerCount('error')).toBe(0);
    expect(socket.listenerCount('connect')).toBe(0);
    track(socket);
  });

  it('connects over ::1 when available', async (ctx) => {
    if (!(await hasIpv6Loopback())) ctx.skip();
    const server = net.createServer((s) => s.on('error', () => {}).end('v6'));
    server.on('error', () => {});
    await new Promise<void>((r) => server.listen({ host: '::1', port: 0 }, r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const socket = track(await dial(toResolved('::1'), (server.address() as net.AddressInfo).port, { timeoutMs: 2000 }));
    expect(socket.remoteFamily).toBe('IPv6');
    const data = await new Promise<string>((r) => socket.once('data', (b: Buffer) => r(b.toString())));
    expect(data).toBe('v6');
  });

  it('a closed port → PCL_ERR_CONNECT_REFUSED, and the socket is released', async () => {
    const port = await closedPort();
    const before = openFdCount();
    for (let i = 0; i < 20; i++) {
      expect(await codeOf(dial(V4, port, { timeoutMs: 2000 }))).toBe('PCL_ERR_CONNECT_REFUSED');
    }
    expect(await waitForFdCount(before)).toBeLessThanOrEqual(before);
  });

  it('a connect that hangs → PCL_ERR_CONNECT_TIMEOUT, within bounds', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const before = openFdCount();
    const t0 = Date.now();
    const err = await dial(V4, hole.port, { timeoutMs: 200 }).catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(PortcullisError);
    expect((err as PortcullisError).code).toBe('PCL_ERR_CONNECT_TIMEOUT');
    expect((err as Error).message).toContain(`127.0.0.1:${hole.port}`);
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(1000);
    expect(await waitForFdCount(before)).toBeLessThanOrEqual(before);
  });

  it('a bad port → PCL_ERR_CONNECT (no throw)', async () => {
    expect(await codeOf(dial(V4, 70000, { timeoutMs: 100 }))).toBe('PCL_ERR_CONNECT');
  });
});

describe('dialFirst', () => {
  it('falls through a refused address to a working one', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    // Same port, two loopback addresses: only 127.0.0.1 listens; 127.0.0.2 refuses.
    const refused = toResolved('127.0.0.2');
    const { socket, address } = await dialFirst([refused, V4], echo.port, { timeoutMs: 2000 });
    track(socket);
    expect(address).toBe(V4);
    expect(socket.remoteAddress).toBe('127.0.0.1');
    expect(socket.listenerCount('connect')).toBe(0);
  });

  it('falls through a hanging address to a working one after the connect timeout', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    // Same port on another loopback address, but that one never completes a connect.
    const hole = await startBlackhole({ host: '127.0.0.2', port: echo.port });
    cleanups.push(() => hole.close());
    const hanging = toResolved('127.0.0.2');
    const t0 = Date.now();
    const { socket, address } = await dialFirst([hanging, V4], echo.port, { timeoutMs: 150 });
    track(socket);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(address).toBe(V4);
    expect(socket.remoteAddress).toBe('127.0.0.1');
  });

  it('rejects with the last error when every address fails', async () => {
    const port = await closedPort();
    expect(await codeOf(dialFirst([toResolved('127.0.0.2'), V4], port, { timeoutMs: 1000 }))).toBe('PCL_ERR_CONNECT_REFUSED');
  });

  it('an empty list → PCL_ERR_CONNECT', async () => {
    expect(await codeOf(dialFirst([], 443, { timeoutMs: 100 }))).toBe('PCL_ERR_CONNECT');
  });
});

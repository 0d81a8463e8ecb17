import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, startBlackhole, type TestServer } from '../helpers/servers.js';
import { openTunnel, rawExchange, readBytes, statusOf } from '../helpers/raw.js';
import { metric } from '../helpers/metrics.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function echoGateway(extra: Record<string, unknown> = {}): Promise<{ gw: GatewayProcess; echo: TestServer }> {
  const echo = await startTcpEcho();
  cleanups.push(() => echo.close());
  const base = {
    allow: { presets: [], rules: [{ name: 'echo', hosts: ['echo.example.com'], ports: [echo.port], allowPrivate: true }] },
    dns: { overrides: { 'echo.example.com': '127.0.0.1' } },
  };
  const gw = await startGateway({ ...base, ...extra });
  cleanups.push(() => gw.stop('SIGKILL'));
  return { gw, echo };
}

function idleConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', reject);
    cleanups.push(async () => s.destroy());
  });
}

describe('limits', () => {
  it('answers 429 with Retry-After past the per-client connection limit', async () => {
    const { gw } = await echoGateway({ proxy: { limits: { maxConnectionsPerClient: 2 } } });
    await idleConnection(gw.port);
    await idleConnection(gw.port);
    // A client's 'connect' comes before the gateway's accept: wait until the gateway counts both.
    await expect.poll(() => metric(gw.adminPort, 'portcullis_client_connections')).toBe(2);
    const r = await rawExchange(gw.port, 'CONNECT echo.example.com:1 HTTP/1.1\r\n\r\n');
    expect(statusOf(r.text)).toBe(429);
    expect(r.text).toMatch(/Retry-After: \d+/);
    await gw.waitForLog((l) => l.event === 108 && l.reason === 'limit_client');
  });

  it('answers 503 with Retry-After past the total connection limit', async () => {
    const { gw } = await echoGateway({ proxy: { limits: { maxConnections: 2 } } });
    await idleConnection(gw.port);
    await idleConnection(gw.port);
    // A client's 'connect' comes before the gateway's accept: wait until the gateway counts both.
    await expect.poll(() => metric(gw.adminPort, 'portcullis_client_connections')).toBe(2);
    const r = await rawExchange(gw.port, 'CONNECT echo.example.com:1 HTTP/1.1\r\n\r\n');
    expect(statusOf(r.text)).toBe(503);
    expect(r.text).toMatch(/Retry-After: \d+/);
  });

  it('refuses a client outside clients.allow with 403', async () => {
    const { gw, echo } = await echoGateway({ clients: { allow: ['10.0.0.0/8'] } });
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(403);
    t.socket.destroy();
    await gw.waitForLog((l) => l.event === 107 && l.reason === 'client_denied');
  });

  it('a refused client that resets its connection costs nothing but that connection (no uncaught error)', async () => {
    const { gw, echo } = await echoGateway({ clients: { allow: ['10.0.0.0/8'] } });
    const before = gw.logs.length;
    // A whole CONNECT head, bytes after it, then a reset: the refusal is written to a socket the client already dropped.
    for (let i = 0; i < 20; i++) {
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      s.on('error', () => undefined);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      s.write(`CONNECT echo.example.com:${echo.port} HTTP/1.1\r\nHost: echo.example.com\r\n\r\n${'x'.repeat(4096)}`);
      await new Promise((r) => setImmediate(r));
      s.resetAndDestroy();
    }
    // Still answering, and every reset was only that connection's end.
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(403);
    t.socket.destroy();
    await expect.poll(() => gw.logs.slice(before).filter((l) => l.event === 107).length).toBeGreaterThanOrEqual(21);
    expect(gw.logs.slice(before).filter((l) => l.event === 500)).toEqual([]);
  });

  it('closes a client that does not finish its headers in time with 408', async () => {
    const { gw } = await echoGateway({ proxy: { timeouts: { headersMs: 400 } } });
    const r = await rawExchange(gw.port, 'CONNECT echo.example.com:1 HTTP/1.1\r\nX-Slow: ', 8_000);
    expect(r.closed).toBe(true);
    expect(statusOf(r.text)).toBe(408);
  });
});

describe('timeouts', () => {
  it('closes an idle tunnel after idleMs', async () => {
    const { gw, echo } = await echoGateway({ proxy: { timeouts: { idleMs: 500 } } });
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    const closed = new Promise<void>((r) => t.socket.once('close', () => r()));
    t.socket.resume();
    await closed;
    const rec = await gw.waitForLog((l) => l.event === 103 && l.closeCause === 'idle_timeout');
    expect(rec.durationMs as number).toBeGreaterThanOrEqual(450);
  });

  it('closes a busy tunnel at maxTunnelMs', async () => {
    const { gw, echo } = await echoGateway({ proxy: { timeouts: { maxTunnelMs: 600 } } });
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    const closed = new Promise<void>((r) => t.socket.once('close', () => r()));
    t.socket.on('error', () => {});
    t.socket.resume();
    const ping = setInterval(() => t.socket.writable && t.socket.write('x'), 50);
    await closed;
    clearInterval(ping);
    await gw.waitForLog((l) => l.event === 103 && l.closeCause === 'lifetime');
  });

  it('answers 504 when the destination does not answer the connect in time', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const gw = await startGateway({
      proxy: { timeouts: { connectMs: 500 } },
      allow: { presets: [], rules: [{ name: 'hole', hosts: ['hole.example.com'], ports: [hole.port], allowPrivate: true }] },
      dns: { overrides: { 'hole.example.com': '127.0.0.1' } },
    });
    cleanups.push(() => gw.stop('SIGKILL'));
    const t = await openTunnel(gw.port, `hole.example.com:${hole.port}`);
    expect(t.status).toBe(504);
    t.socket.destroy();
    await gw.waitForLog((l) => l.event === 403 && l.reason === 'connect_timeout');
  });
});

describe('lifecycle', () => {
  it('SIGTERM: stops accepting, lets a live tunnel run until the drain deadline, then exits 0', async () => {
    const { gw, echo } = await echoGateway({ proxy: { drainMs: 1500 } });
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    const closed = new Promise<number>((r) => t.socket.once('close', () => r(Date.now())));
    t.socket.on('error', () => {});
    const termAt = Date.now();
    gw.proc.kill('SIGTERM');
    await gw.waitForLog((l) => l.msg === 'draining');
    // New connections are refused once the listener is closed ...
    await expect(
      new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: gw.port }, () => {
          s.destroy();
          resolve('connected');
        });
        s.on('error', reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
    // ... while the live tunnel keeps flowing.
    t.socket.write('still here');
    expect((await readBytes(t.socket, 10)).toString()).toBe('still here');
    const closedAt = await closed;
    expect(closedAt - termAt).toBeGreaterThanOrEqual(1_300);
    expect(await gw.exited).toBe(0);
    expect(gw.logs.some((l) => l.event === 103 && l.closeCause === 'drain')).toBe(true);
  });

  it('SIGHUP reload applies a new allowlist without dropping a live tunnel', async () => {
    const { gw, echo } = await echoGateway();
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    t.socket.on('error', () => {});
    const before = await openTunnel(gw.port, `new.example.com:${echo.port}`);
    expect(before.status).toBe(403);
    before.socket.destroy();
    await gw.reload({
      allow: { presets: [], rules: [{ name: 'echo2', hosts: ['echo.example.com', 'new.example.com'], ports: [echo.port], allowPrivate: true }] },
      dns: { overrides: { 'echo.example.com': '127.0.0.1', 'new.example.com': '127.0.0.1' } },
    });
    const after = await openTunnel(gw.port, `new.example.com:${echo.port}`);
    expect(after.status).toBe(200);
    after.socket.destroy();
    t.socket.write('survived');
    expect((await readBytes(t.socket, 8, t.rest)).toString()).toBe('survived');
    t.socket.destroy();
  });

  it('SIGHUP with a broken file keeps the running configuration', async () => {
    const { gw, echo } = await echoGateway();
    await gw.reload({ allow: { rules: [{ name: 'bad', hosts: ['*'], ports: [70000] }] } });
    expect(gw.logs.some((l) => String(l.msg).startsWith('reload refused') && l.event === 401)).toBe(true);
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    t.socket.destroy();
  });

  it('report mode lets a refused destination through and logs event 111', async () => {
    const { gw, echo } = await echoGateway({
      proxy: { mode: 'report' },
      dns: { overrides: { 'echo.example.com': '127.0.0.1', 'unlisted.example.com': '127.0.0.1' } },
    });
    const t = await openTunnel(gw.port, `unlisted.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    t.socket.destroy();
    const rec = await gw.waitForLog((l) => l.event === 111);
    expect(rec).toMatchObject({ reason: 'host_not_allowed', target: `unlisted.example.com:${echo.port}` });
  });
});

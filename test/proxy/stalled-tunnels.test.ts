/**
 * Stalled tunnels (issue 13, item 4): 2,000 tunnels whose clients stop reading while the
 * destination keeps sending. The gateway's memory stays bounded: each relay holds at most a bounded
 * amount per stalled direction (native: the unsent rest of one 64 KiB read; JavaScript: the client
 * socket's write queue under its high-water mark plus one read) and stops reading the destination;
 * the rest waits in kernel socket buffers, which are not the gateway's memory (docs/design-notes.md).
 *
 * The clients are a Python script that gives each socket a small receive buffer and MSS before it
 * connects (Node cannot): on loopback an autotuned socket absorbs megabytes, which would hide what
 * the relay holds behind the kernel's buffers, or need gigabytes of kernel memory to get past them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startGateway } from '../helpers/gateway.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { requireBinary } from '../helpers/system.js';

const python = requireBinary('python3');
const TUNNELS = 2000;
/** What the destination sends on each tunnel: well past what the relay may hold, bounded so the kernel's share stays modest (~0.7 GB in all). */
const PER_TUNNEL = 320 * 1024;
/** The generous bound: average growth of the gateway's RSS per stalled tunnel. Native measures ~60 KiB, JavaScript ~100-130 KiB. */
const BOUND_PER_TUNNEL = 256 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * A destination that, once told to, sends PER_TUNNEL bytes on every connection as fast as each
 * takes them. `sent()` counts what its kernel took (not what waits in Node's write queues).
 */
async function startSender(): Promise<{ port: number; go(): void; sent(): number; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket & { sentBytes?: number }>();
  let going = false;
  let sent = 0;
  const pump = (s: net.Socket & { sentBytes?: number }): void => {
    while (going && !s.destroyed && (s.sentBytes ?? 0) < PER_TUNNEL) {
      s.sentBytes = (s.sentBytes ?? 0) + CHUNK.length;
      sent += CHUNK.length;
      if (!s.write(CHUNK)) return;
    }
  };
  const server = net.createServer((s: net.Socket & { sentBytes?: number }) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => sockets.delete(s));
    s.on('drain', () => pump(s));
    pump(s);
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    go() {
      going = true;
      for (const s of sockets) pump(s);
    },
    sent: () => {
      let queued = 0;
      for (const s of sockets) queued += s.writableLength;
      return sent - queued;
    },
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Resolves once `value()` has not changed for `quietMs` (sampling every 250 ms), with its last value. */
async function whenSettled(value: () => number, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = value();
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
  }
  throw new Error(`still changing after ${timeoutMs} ms (last ${last})`);
}

describe.skipIf(!python).each(['native', 'js'] as const)('2,000 stalled tunnels, relay %s', (relay) => {
  it('keep the gateway’s memory bounded, and the gateway keeps serving', async () => {
    const dest = await startSender();
    cleanups.push(() => dest.close());
    const authority = `dest.example.com:${dest.port}`;
    const gw = await startGateway({
      proxy: { relay, limits: { maxConnections: 5000, maxConnectionsPerClient: 5000 }, timeouts: { idleMs: 120_000 } },
      allow: { presets: [], rules: [{ name: 'dest', hosts: ['dest.example.com'], ports: [dest.port], allowPrivate: true }] },
      dns: { overrides: { 'dest.example.com': '127.0.0.1' } },
      log: { access: false },
    });
    cleanups.push(() => gw.stop('SIGKILL'));

    const clients = spawn(python!, [resolve(import.meta.dirname, '../helpers/stalled-clients.py'), String(gw.port), authority, String(TUNNELS)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    cleanups.push(() => {
      clients.stdin.end();
      clients.kill();
    });
    const ready = await new Promise<string>((done, fail) => {
      createInterface({ input: clients.stdout }).once('line', done);
      clients.once('exit', (code) => fail(new Error(`stalled-clients.py exited ${code}`)));
    });
    expect(ready).toBe(`ready ${TUNNELS}`);
    // The gateway answered 200 once its connect completed; the destination's accepts may trail.
    await expect.poll(() => dest.connections(), { timeout: 10_000 }).toBe(TUNNELS);

    const idle = rssBytes(gw.pid);
    dest.go();
    // The destination keeps sending until every tunnel is full up to its client: then nothing moves.
    const sent = await whenSettled(() => dest.sent(), 1_500, 60_000);
    const stalled = rssBytes(gw.pid);
    const perTunnel = (stalled - idle) / TUNNELS;
    console.info(
      `relay ${relay}, Node ${process.version}: ${TUNNELS} stalled tunnels; the destination got ${(sent / TUNNELS / 1024).toFixed(0)} KiB per tunnel away; ` +
        `gateway RSS ${(idle / 2 ** 20).toFixed(0)} MiB with the tunnels idle, ${(stalled / 2 ** 20).toFixed(0)} MiB stalled: ${(perTunnel / 1024).toFixed(1)} KiB per stalled tunnel`,
    );
    // Well past what the relay may hold per tunnel went out, so the bound below means something.
    expect(sent / TUNNELS).toBeGreaterThan(BOUND_PER_TUNNEL);
    expect(perTunnel).toBeLessThan(BOUND_PER_TUNNEL);

    // Still serving: a new tunnel gets its bytes.
    const t = await openTunnel(gw.port, authority);
    expect(t.status).toBe(200);
    expect((await readBytes(t.socket, 1024, t.rest)).length).toBe(1024);
    t.socket.destroy();
  }, 120_000);
});

import { expect, it } from 'vitest';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { openFdCount, waitForFdCount } from '../helpers/fds.js';
import { echoInProcessForSuite, waitUntilIdle } from '../helpers/inprocess.js';

const suite = echoInProcessForSuite();

/** One tunnel in one of the ways clients end them: clean, half-closed, abrupt, or refused. */
async function oneTunnel(i: number): Promise<void> {
  const kind = i % 4;
  const authority = kind === 3 ? `forbidden.example.com:${suite.echo.port}` : `echo.example.com:${suite.echo.port}`;
  const t = await openTunnel(suite.gw.port, authority);
  t.socket.on('error', () => {});
  if (kind === 3) {
    expect(t.status).toBe(403);
    t.socket.destroy();
    return;
  }
  expect(t.status).toBe(200);
  const ping = Buffer.from(`ping${i}`.padEnd(16, '.'));
  t.socket.write(ping);
  const back = await readBytes(t.socket, ping.length, t.rest);
  expect(back.equals(ping)).toBe(true);
  if (kind === 0) {
    t.socket.end();
    await new Promise<void>((r) => t.socket.once('close', () => r()).resume());
  } else if (kind === 1) {
    t.socket.resetAndDestroy();
  } else {
    t.socket.destroy();
  }
}

async function runTunnels(count: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await oneTunnel(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function listenerCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of process.eventNames()) out[`process:${String(name)}`] = process.listenerCount(name);
  return out;
}

it('opens and closes 5,000 tunnels without leaking file descriptors, listeners or connection state', { timeout: 120_000 }, async () => {
  await runTunnels(200, 50); // warm up lazily created handles (pools, timers)
  await waitUntilIdle(suite.gw);
  await suite.echo.allClosed(); // the echo server's side of the warm-up tunnels too
  const fdsBefore = openFdCount();
  const listenersBefore = listenerCounts();

  await runTunnels(5_000, 50);
  await waitUntilIdle(suite.gw);
  await suite.echo.allClosed();

  expect(suite.gw.gateway.proxy.activeConnections).toBe(0);
  expect(suite.gw.gateway.proxy.openTunnels).toBe(0);
  expect(listenerCounts()).toEqual(listenersBefore);
  // A leak of even 1% of 5,000 tunnels would be 50+ descriptors.
  expect(await waitForFdCount(fdsBefore + 2)).toBeLessThanOrEqual(fdsBefore + 2);
});

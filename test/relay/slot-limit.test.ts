/**
 * What an operator sees of the native relay on a real /metrics scrape (tunnels held, slots in use,
 * bytes pending on a full side, loop iterations), and the relay's slot limit lowered to 2 with
 * PORTCULLIS_RELAY_SLOTS: tunnels past it still work, relayed in JavaScript, and say so in the
 * access log (relayFallback) and in portcullis_relay_fallbacks_total. A real gateway process, real
 * tunnels to a real TCP echo server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { startGateway, type GatewayProcess, type LogRecord } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { requireNativeRelay } from '../helpers/relay.js';
import { startTcpEcho } from '../helpers/servers.js';
import { Events } from '../../src/log/events.js';

const native = requireNativeRelay();
const SLOTS = 2;

let echo: Awaited<ReturnType<typeof startTcpEcho>>;
let gw: GatewayProcess;
const open: Socket[] = [];

beforeAll(async () => {
  echo = await startTcpEcho();
  gw = await startGateway(
    { proxy: { relay: 'auto' }, allow: { presets: [], rules: [{ name: 'echo', hosts: ['127.0.0.1'], ports: [echo.port], allowPrivate: true }] } },
    { env: { PORTCULLIS_RELAY_SLOTS: String(SLOTS) } },
  );
});

afterAll(async () => {
  for (const s of open) s.destroy();
  await gw?.stop();
  await echo?.close();
});

/** A tunnel to the echo server that carried one ping both ways. */
async function pingedTunnel(): Promise<{ socket: Socket; rest: Buffer }> {
  const t = await openTunnel(gw.port, `127.0.0.1:${echo.port}`);
  expect(t.status).toBe(200);
  t.socket.on('error', () => {});
  open.push(t.socket);
  t.socket.write('ping');
  expect((await readBytes(t.socket, 4, t.rest)).toString()).toBe('ping');
  return { socket: t.socket, rest: Buffer.alloc(0) };
}

/** Ends a tunnel from the client side and returns its access record. */
async function endAndRecord(socket: Socket): Promise<LogRecord> {
  const since = gw.logs.length;
  socket.end();
  socket.resume();
  return gw.waitForLog((r) => r.event === Events.TUNNEL, 10_000, since);
}

const relayMetric = (name: string, labels: Record<string, string> = {}): Promise<number> => metric(gw.adminPort, name, labels);

describe('the native relay on /metrics, with its slot limit lowered to 2', () => {
  it('shows the tunnels it holds, its slots and the limit, and its loop turning', async (ctx) => {
    ctx.skip(!native.available, native.skipNote);
    expect(await relayMetric('portcullis_relay_slot_limit')).toBe(SLOTS);
    const loopsBefore = await relayMetric('portcullis_relay_loop_iterations_total');
    await pingedTunnel();
    await pingedTunnel();
    expect(await relayMetric('portcullis_relay_tunnels')).toBe(2);
    expect(await relayMetric('portcullis_relay_slots_in_use')).toBe(2);
    // Two new tunnels and two pings woke the relay thread.
    expect(await relayMetric('portcullis_relay_loop_iterations_total')).toBeGreaterThan(loopsBefore);
    expect(await relayMetric('portcullis_relay_pending_bytes')).toBe(0);
  });

  it('shows the bytes it holds while a client stops reading, and none once it reads again', async (ctx) => {
    ctx.skip(!native.available, native.skipNote);
    const stalled = open[0];
    if (!stalled) throw new Error('the tunnels of the test above are missing');
    // The client writes and reads nothing: the echo's answer fills the client's socket, and the
    // relay keeps what the client's side did not take. How much the kernel's buffers absorb first
    // varies (autotuning), so write 1 MiB at a time until the relay holds bytes, at most 128 MiB.
    const chunk = Buffer.alloc(1 << 20, 0x61);
    stalled.pause();
    let sent = 0;
    let pending = 0;
    for (let i = 0; i < 128 && pending === 0; i++) {
      stalled.write(chunk);
      sent += chunk.length;
      pending = await relayMetric('portcullis_relay_pending_bytes');
    }
    expect(pending).toBeGreaterThan(0);
    expect(pending).toBeLessThanOrEqual(sent);
    expect(await relayMetric('portcullis_relay_blocked_directions')).toBeGreaterThanOrEqual(1);
    // Reading again drains the relay: every byte comes back.
    let received = 0;
    let wrong = 0;
    await new Promise<void>((resolve) => {
      const onData = (c: Buffer): void => {
        if (!c.equals(chunk.subarray(0, c.length))) wrong++;
        received += c.length;
        if (received < sent) return;
        stalled.removeListener('data', onData);
        resolve();
      };
      stalled.on('data', onData);
      stalled.resume();
    });
    expect({ received, wrong }).toEqual({ received: sent, wrong: 0 });
    await expect.poll(() => relayMetric('portcullis_relay_pending_bytes'), { timeout: 10_000 }).toBe(0);
    expect(await relayMetric('portcullis_relay_blocked_directions')).toBe(0);
  });

  it('relays tunnels past the limit in JavaScript, labelled slots_full; a freed slot is used again', async (ctx) => {
    ctx.skip(!native.available, native.skipNote);
    expect(await relayMetric('portcullis_relay_slots_in_use')).toBe(SLOTS);
    // Past the limit: the tunnel works all the same.
    const third = await pingedTunnel();
    expect(await relayMetric('portcullis_relay_tunnels')).toBe(SLOTS);
    const thirdRec = await endAndRecord(third.socket);
    expect(thirdRec).toMatchObject({ relay: 'js', relayFallback: 'slots_full', status: 200, bytesUp: 4, bytesDown: 4 });
    expect(await relayMetric('portcullis_relay_fallbacks_total', { reason: 'slots_full' })).toBe(1);
    expect(await relayMetric('portcullis_tunnels_relayed_total', { relay: 'js' })).toBe(1);

    // One native tunnel ends: its slot is free once the proxy has heard, and the next tunnel takes it.
    const first = open[0];
    if (!first) throw new Error('the tunnels of the first test are missing');
    const firstRec = await endAndRecord(first);
    expect(firstRec).toMatchObject({ relay: 'native', status: 200 });
    expect(firstRec.relayFallback).toBeUndefined();
    expect(await relayMetric('portcullis_relay_slots_in_use')).toBe(SLOTS - 1);
    const fourth = await pingedTunnel();
    expect(await relayMetric('portcullis_relay_tunnels')).toBe(SLOTS);
    const fourthRec = await endAndRecord(fourth.socket);
    expect(fourthRec).toMatchObject({ relay: 'native', status: 200, bytesUp: 4, bytesDown: 4 });
    expect(await relayMetric('portcullis_relay_fallbacks_total', { reason: 'slots_full' })).toBe(1);
  });
});

describe('PORTCULLIS_RELAY_SLOTS that is not a slot count', () => {
  it.each(['65537', 'lots'])('%s: relay: native refuses to start, naming the variable', async (value) => {
    const started = startGateway({ proxy: { relay: 'native' }, allow: { presets: [], rules: [] } }, { env: { PORTCULLIS_RELAY_SLOTS: value } });
    await expect(started).rejects.toThrow(/PORTCULLIS_RELAY_SLOTS=.*is not an integer from 1 to 65536/);
  });
});

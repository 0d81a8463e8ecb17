/**
 * Live apply: 200 established tunnels carry traffic while the allowlist changes through the API
 * and then through SIGHUP. Every tunnel stays up and keeps echoing; every new CONNECT is decided by
 * the rules just written.
 */
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { apiClient, commentedConfig, startWithCommentedFile } from './helpers.js';

const TUNNELS = 200;
/** Bounded traffic: at most this many rounds over all tunnels while a change is applied. */
const MAX_ROUNDS = 50;

let echo: TestServer;
let gw: GatewayProcess;
let api: ReturnType<typeof apiClient>;
const tunnels: Socket[] = [];

beforeAll(async () => {
  echo = await startTcpEcho();
  gw = await startWithCommentedFile(echo.port);
  api = apiClient(gw.adminPort);
});

afterAll(async () => {
  for (const s of tunnels) s.destroy();
  await gw.stop('SIGKILL');
  await echo.close();
});

async function connectStatus(host: string): Promise<number> {
  const t = await openTunnel(gw.port, `${host}:${echo.port}`);
  t.socket.on('error', () => {});
  t.socket.destroy();
  return t.status;
}

/** One round trip on tunnel i: a message with its number and round, echoed back whole. */
async function roundTrip(i: number, round: number): Promise<void> {
  const s = tunnels[i];
  if (!s) throw new Error(`no tunnel ${i}`);
  const msg = Buffer.from(`tunnel ${i} round ${round}\n`);
  s.write(msg);
  const back = await readBytes(s, msg.length);
  expect(back.toString()).toBe(msg.toString());
}

async function everyTunnelEchoes(round: number): Promise<void> {
  await Promise.all(tunnels.map((_, i) => roundTrip(i, round)));
}

/** Keeps every tunnel busy, round after round, until `change` has finished (bounded by MAX_ROUNDS). */
async function withTraffic<T>(change: () => Promise<T>, firstRound: number): Promise<{ result: T; rounds: number }> {
  let done = false;
  let rounds = 0;
  const traffic = (async () => {
    while (!done && rounds < MAX_ROUNDS) {
      await everyTunnelEchoes(firstRound + rounds);
      rounds++;
    }
  })();
  try {
    return { result: await change(), rounds: rounds + 1 };
  } finally {
    done = true;
    await traffic;
  }
}

it(`keeps ${TUNNELS} established tunnels alive through allowlist changes by API and SIGHUP; new CONNECTs follow the new rules`, async () => {
  for (let i = 0; i < TUNNELS; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => openTunnel(gw.port, `echo.example.com:${echo.port}`)));
    for (const t of batch) {
      expect(t.status).toBe(200);
      t.socket.on('error', () => {});
      tunnels.push(t.socket);
    }
  }
  await everyTunnelEchoes(0);
  expect(await connectStatus('new.example.com')).toBe(403);

  // Through the API: allow new.example.com, and stop allowing echo.example.com (the rule goes with it).
  const { result } = await withTraffic(async () => {
    const add = await api('POST', '/api/v1/allow/rules', { name: 'new', hosts: ['new.example.com'], ports: [echo.port], allowPrivate: true });
    const remove = await api('DELETE', '/api/v1/allow/hosts/echo.example.com');
    return [add, remove];
  }, 1);
  expect(result.map((r) => [r.status, r.body.applied])).toEqual([
    [200, true],
    [200, true],
  ]);
  expect(await connectStatus('new.example.com')).toBe(200);
  expect(await connectStatus('echo.example.com')).toBe(403);
  await everyTunnelEchoes(1000);

  // Through the file and SIGHUP: the operator's original rules come back.
  const before = gw.logs.length;
  await withTraffic(async () => {
    writeFileSync(gw.configFile, commentedConfig(echo.port));
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((r) => r.msg === 'configuration reloaded', 10_000, before);
  }, 2000);
  expect(await connectStatus('echo.example.com')).toBe(200);
  expect(await connectStatus('new.example.com')).toBe(403);
  await everyTunnelEchoes(3000);

  // No tunnel ended during any of it.
  expect(tunnels.every((s) => !s.destroyed && s.readyState === 'open')).toBe(true);
});

// The relay half of issue 11's live test: change upstreamProxy through PUT /api/v1/relay while these
// tunnels run, and show new tunnels going through the new relay. It needs the relay dialer (branch
// s5-relay); the lead adds it when merging.

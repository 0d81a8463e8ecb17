import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes } from '../helpers/raw.js';

const TOKEN = 'test-admin-token-0123456789';
let echo: TestServer;
let gw: GatewayProcess;

function echoConfig(extraHosts: string[] = []): Record<string, unknown> {
  const overrides: Record<string, string> = { 'echo.example.com': '127.0.0.1', 'later.example.com': '127.0.0.1' };
  return {
    // round-robin: these tests need both workers to carry traffic; kernel-mode accept order is the OS's.
    proxy: { workers: 2, balance: 'round-robin', drainMs: 2_000 },
    allow: { presets: [], rules: [{ name: 'echo', hosts: ['echo.example.com', ...extraHosts], ports: [echo.port], allowPrivate: true }] },
    dns: { overrides },
    admin: { token: TOKEN },
  };
}

async function admin(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${gw.adminPort}${path}`, init);
}

/** Value of one sample in Prometheus text format (labels given in exposition order). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function echoTunnel(host = 'echo.example.com'): Promise<void> {
  const t = await openTunnel(gw.port, `${host}:${echo.port}`);
  expect(t.status).toBe(200);
  t.socket.write('0123456789');
  expect((await readBytes(t.socket, 10, t.rest)).toString()).toBe('0123456789');
  t.socket.end();
  await new Promise<void>((r) => t.socket.once('close', () => r()).resume());
}

beforeAll(async () => {
  echo = await startTcpEcho();
  gw = await startGateway(echoConfig());
});

afterAll(async () => {
  await gw?.stop('SIGKILL');
  await echo?.close();
});

function workerPids(): number[] {
  return gw.logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
}

describe('two data-plane workers', () => {
  it('spreads connections over both workers and one scrape sums their counters', async () => {
    expect(new Set(workerPids()).size).toBe(2);
    for (let i = 0; i < 20; i++) await echoTunnel();
    for (let i = 0; i < 6; i++) {
      const t = await openTunnel(gw.port, `denied.example.com:${echo.port}`);
      expect(t.status).toBe(403);
      t.socket.destroy();
    }
    // Both workers carried traffic (round-robin hand-off) ...
    const tunnelPids = new Set(gw.logs.filter((l) => l.event === 103 && l.rule === 'echo').map((l) => l.pid));
    expect(tunnelPids.size).toBe(2);
    // ... and the supervisor's scrape is the sum over both.
    const text = await (await admin('/metrics')).text();
    expect(sample(text, 'portcullis_requests_total{kind="tunnel",verdict="allow",reason="none",rule="echo"}')).toBe(20);
    expect(sample(text, 'portcullis_rejections_total{reason="host_not_allowed"}')).toBe(6);
    expect(sample(text, 'portcullis_bytes_total{direction="up",rule="echo"}')).toBe(200);
    expect(sample(text, 'portcullis_bytes_total{direction="down",rule="echo"}')).toBe(200);
    expect(sample(text, 'portcullis_workers{state="listening"}')).toBe(2);
    // One client address, whichever worker saw it: a union, not a sum.
    expect(sample(text, 'portcullis_connected_clients')).toBe(1);
  });

  it('counts bytes of a tunnel that is still open', async () => {
    // Its own baseline (it used to count on the first test's 200 bytes, and failed alone).
    const upBefore = sample(await (await admin('/metrics')).text(), 'portcullis_bytes_total{direction="up",rule="echo"}');
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    const payload = Buffer.alloc(100_000, 7);
    t.socket.write(payload);
    await readBytes(t.socket, payload.length, t.rest);
    const text = await (await admin('/metrics')).text();
    expect(sample(text, 'portcullis_open_tunnels{rule="echo"}')).toBe(1);
    expect(sample(text, 'portcullis_bytes_total{direction="up",rule="echo"}')).toBeGreaterThanOrEqual(upBefore + payload.length);
    t.socket.destroy();
  });

  it('SIGHUP reload reaches every worker', async () => {
    await gw.reload(echoConfig(['later.example.com']));
    // Enough new connections that both workers serve some of them.
    for (let i = 0; i < 6; i++) await echoTunnel('later.example.com');
    const pids = new Set(gw.logs.filter((l) => l.event === 103 && String(l.target).startsWith('later.example.com')).map((l) => l.pid));
    expect(pids.size).toBe(2);
  });

  it('the management API needs the bearer token', async () => {
    expect((await admin('/api/v1/status')).status).toBe(401);
    expect((await admin('/api/v1/status', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const res = await admin('/api/v1/status', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { mode: string; workers: Array<{ pid: number; listening: boolean }> };
    expect(body.mode).toBe('cluster');
    expect(body.workers.filter((w) => w.listening)).toHaveLength(2);
    expect(JSON.stringify(gw.logs)).not.toContain(TOKEN);
  });

  it('replaces a worker that dies, and keeps serving', async () => {
    const [victim] = workerPids();
    const before = workerPids().length;
    process.kill(victim!, 'SIGKILL');
    await gw.waitForLog((l) => l.msg === 'worker exited unexpectedly: replacing it' && l.pid === victim);
    await gw.waitForLog((l) => l.msg === 'worker listening' && gw.logs.filter((x) => x.msg === 'worker listening').length > before);
    for (let i = 0; i < 4; i++) await echoTunnel();
    const text = await (await admin('/metrics')).text();
    expect(sample(text, 'portcullis_worker_restarts_total')).toBe(1);
    expect(sample(text, 'portcullis_workers{state="listening"}')).toBe(2);
    expect((await admin('/readyz')).status).toBe(200);
  });

  it('SIGTERM: /readyz turns 503 at once while a live tunnel keeps flowing until the deadline', async () => {
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    t.socket.on('error', () => {});
    const closed = new Promise<number>((r) => t.socket.once('close', () => r(Date.now())));
    expect((await admin('/readyz')).status).toBe(200);
    const termAt = Date.now();
    gw.proc.kill('SIGTERM');
    await gw.waitForLog((l) => l.msg === 'draining' && l.pid === gw.pid);
    const ready = await admin('/readyz');
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reasons: string[] }).reasons).toContain('draining');
    t.socket.write('during drain');
    expect((await readBytes(t.socket, 12, t.rest)).toString()).toBe('during drain');
    const closedAt = await closed;
    expect(closedAt - termAt).toBeGreaterThanOrEqual(1_800);
    expect(await gw.exited).toBe(0);
  });
});

import { afterEach, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel } from '../helpers/raw.js';

let echo: TestServer | undefined;
let gw: GatewayProcess | undefined;
afterEach(async () => {
  await gw?.stop('SIGKILL');
  await echo?.close();
});

it('single process: /healthz and /readyz answer 200, and /readyz turns 503 as the drain starts', async () => {
  echo = await startTcpEcho();
  gw = await startGateway({
    proxy: { drainMs: 1_000 },
    allow: { presets: [], rules: [{ name: 'echo', hosts: ['echo.example.com'], ports: [echo.port], allowPrivate: true }] },
    dns: { overrides: { 'echo.example.com': '127.0.0.1' } },
  });
  const base = `http://127.0.0.1:${gw.adminPort}`;
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  expect((await fetch(`${base}/api/v1/status`)).status).toBe(404); // no admin.token: API off
  const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
  t.socket.on('error', () => {});
  gw.proc.kill('SIGTERM');
  await gw.waitForLog((l) => l.msg === 'draining');
  const r = await fetch(`${base}/readyz`);
  expect(r.status).toBe(503);
  expect(await r.json()).toEqual({ ready: false, reasons: ['draining'] });
  expect(await gw.exited).toBe(0);
});

it('admin.metrics: false serves no metrics', async () => {
  gw = await startGateway({ admin: { metrics: false } });
  const r = await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`);
  expect(r.status).toBe(404);
});

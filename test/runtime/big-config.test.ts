import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes } from '../helpers/raw.js';

/**
 * Workers get their configuration over IPC: Linux caps one environment string at 128 KiB
 * (MAX_ARG_STRLEN), so a large allowlist passed in the environment would make every fork fail,
 * including the forks that replace dead workers after a reload.
 */
const HOSTS = 5_500;
let echo: TestServer;
let gw: GatewayProcess;

function bigConfig(lastHost: string): Record<string, unknown> {
  const hosts = Array.from({ length: HOSTS }, (_, i) => `agent-${String(i).padStart(5, '0')}.big-allowlist.example.com`);
  hosts.push(lastHost);
  return {
    proxy: { workers: 2, balance: 'round-robin', drainMs: 1_000 },
    allow: { presets: [], rules: [{ name: 'big', hosts, ports: [echo.port], allowPrivate: true }] },
    dns: { overrides: { [lastHost]: '127.0.0.1' } },
  };
}

async function echoThrough(host: string): Promise<void> {
  const t = await openTunnel(gw.port, `${host}:${echo.port}`);
  expect(t.status).toBe(200);
  t.socket.write('ping');
  expect((await readBytes(t.socket, 4, t.rest)).toString()).toBe('ping');
  t.socket.end();
  await new Promise<void>((r) => t.socket.once('close', () => r()).resume());
}

beforeAll(async () => {
  echo = await startTcpEcho();
});

afterAll(async () => {
  await gw?.stop('SIGKILL');
  await echo?.close();
});

it('cluster with an allowlist over 200 KiB: starts, replaces a killed worker after a reload, and the replacement has the reloaded list', async () => {
  const first = bigConfig('first-end.big-allowlist.example.com');
  expect(JSON.stringify(first).length).toBeGreaterThan(200 * 1024);
  // Three processes parse and compile the big list: give a loaded machine time.
  gw = await startGateway(first, { listenTimeoutMs: 60_000 });
  await echoThrough('first-end.big-allowlist.example.com');

  // The reload moves the end of the list to a new host; then a worker dies and is replaced.
  await gw.reload(bigConfig('reloaded-end.big-allowlist.example.com'), 60_000);
  const listening = (): number[] => gw.logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
  const [victim] = listening();
  process.kill(victim!, 'SIGKILL');
  const replaced = await gw.waitForLog(
    (l) =>
      l.msg === 'worker listening' &&
      !listening()
        .slice(0, 2)
        .includes(l.pid as number),
    60_000,
  );
  const replacement = replaced.pid as number;

  // Round-robin hands connections to both workers: enough of them that the replacement carries some.
  for (let i = 0; i < 6; i++) await echoThrough('reloaded-end.big-allowlist.example.com');
  const carriers = new Set(gw.logs.filter((l) => l.event === 103 && String(l.target).startsWith('reloaded-end.') && l.rule === 'big').map((l) => l.pid));
  expect(carriers.has(replacement)).toBe(true);
  // ... and the host dropped by the reload is refused there too.
  const old = await openTunnel(gw.port, `first-end.big-allowlist.example.com:${echo.port}`);
  expect(old.status).toBe(403);
  old.socket.destroy();
}, 240_000);

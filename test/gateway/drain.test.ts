import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { startInProcess, type InProcessGateway } from '../helpers/inprocess.js';
import { startHttpServer, startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes } from '../helpers/raw.js';

/** Long enough that a drain reaching it means the drain did not notice its connections end. */
const DRAIN_MS = 60_000;
let gw: InProcessGateway | undefined;
let dest: TestServer | undefined;
afterEach(async () => {
  await dest?.close();
  dest = undefined;
});

/** A gateway that lets `host` through to the local test server on `port`; its drain deadline is DRAIN_MS. */
function gatewayTo(host: string, port: number): Promise<InProcessGateway> {
  return startInProcess({
    proxy: { drainMs: DRAIN_MS },
    allow: { presets: [], rules: [{ name: 'dest', hosts: [host], ports: [port], allowPrivate: true }] },
    dns: { overrides: { [host]: '127.0.0.1' } },
  });
}

/** 'drained' when the drain ends first, 'deadline' when `withinMs` passes first. */
async function drainedWithin(drain: Promise<void>, withinMs: number): Promise<'drained' | 'deadline'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((r) => {
    timer = setTimeout(() => r('deadline'), withinMs);
  });
  const result = await Promise.race([drain.then(() => 'drained' as const), deadline]);
  clearTimeout(timer);
  return result;
}

it('drain ends when an in-flight keep-alive request ends, not at the deadline', async () => {
  let respond: ((res: ServerResponse) => void) | undefined;
  const requested = new Promise<ServerResponse>((r) => (respond = r));
  dest = await startHttpServer((_req, res) => respond?.(res));
  gw = await gatewayTo('web.example.com', dest.port);
  const agent = new http.Agent({ keepAlive: true });
  const req = http.get({ host: '127.0.0.1', port: gw.port, path: `http://web.example.com:${dest.port}/`, agent });
  const response = once(req, 'response') as Promise<[http.IncomingMessage]>;
  const upstreamRes = await requested;
  const drain = gw.stop(); // drainMs: the request is in flight on a keep-alive connection
  upstreamRes.end('done');
  const [res] = await response;
  expect(res.statusCode).toBe(200);
  res.resume();
  expect(await drainedWithin(drain, 15_000)).toBe('drained');
  agent.destroy();
});

it('drain ends when the last tunnel ends, and the tunnel is not cut', async () => {
  dest = await startTcpEcho();
  gw = await gatewayTo('echo.example.com', dest.port);
  const t = await openTunnel(gw.port, `echo.example.com:${dest.port}`);
  expect(t.status).toBe(200);
  const drain = gw.stop();
  t.socket.write('still flowing');
  expect((await readBytes(t.socket, 13, t.rest)).toString()).toBe('still flowing');
  t.socket.end();
  expect(await drainedWithin(drain, 15_000)).toBe('drained');
});

it('a connection accepted just before the drain is served when its CONNECT follows; one that stays silent is closed after the grace', async () => {
  dest = await startTcpEcho();
  gw = await gatewayTo('echo.example.com', dest.port);
  const port = gw.port;
  // Both accepted (connected) before the drain; neither has sent a byte yet.
  const late = net.connect({ host: '127.0.0.1', port });
  const silent = net.connect({ host: '127.0.0.1', port });
  late.on('error', () => undefined);
  silent.on('error', () => undefined);
  await Promise.all([once(late, 'connect'), once(silent, 'connect')]);
  await new Promise((r) => setTimeout(r, 50)); // accepted on the gateway's side too
  const drain = gw.stop();
  const silentClosed = once(silent, 'close');
  // The request a load balancer was forwarding as the drain began.
  let answer = '';
  late.setEncoding('latin1');
  late.on('data', (c: string) => (answer += c));
  late.write(`CONNECT echo.example.com:${dest.port} HTTP/1.1\r\nHost: echo.example.com:${dest.port}\r\n\r\nhello`);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo; got ${JSON.stringify(answer)}`)), 5_000);
    late.on('data', () => {
      if (answer.endsWith('hello')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  await silentClosed;
  late.end();
  expect(await drainedWithin(drain, 15_000)).toBe('drained');
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import https from 'node:https';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startBannerServer, startHttpsServer, startTcpEcho, type TestHttpsServer, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes, rawExchange, statusOf } from '../helpers/raw.js';
import { requireBinary, run } from '../helpers/system.js';
import { metric } from '../helpers/metrics.js';
import { requireNativeRelay } from '../helpers/relay.js';
import { clientHello, TLS12, TLS13 } from '../helpers/client-hello.js';

const WS = '4f0c7d1e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';
const ODS = `${WS}.ods.opinsights.azure.com`;
const OMS = `${WS}.oms.opinsights.azure.com`;
const curl = requireBinary('curl');
const native = requireNativeRelay();

let upstream: TestHttpsServer;
let echo: Awaited<ReturnType<typeof startTcpEcho>>;
let gw: GatewayProcess;
/** The same gateway with `relay: js`: the fallback must keep every tunnel behaviour too. */
let jsGw: GatewayProcess;
let proxyUrl: string;

let banner: TestServer;
/** Bound on the bytes written while waiting for the echo to be held up (Linux buffers can take tens of MiB). */
const MAX_HOLD_BYTES = 128 * 1024 * 1024;

function gatewayConfig(relay: 'auto' | 'js', extraPorts: number[] = []): Record<string, unknown> {
  return {
    proxy: { relay },
    allow: {
      presets: ['azure-public'],
      workspaces: [{ id: WS, region: 'westeurope' }],
      rules: [
        // Stands in for Private Link: the test upstream lives on loopback.
        { name: 'ods-test', hosts: ['{workspaceId}.ods.opinsights.azure.com'], ports: [upstream.port], allowPrivate: true },
        { name: 'echo', hosts: ['echo.example.com'], ports: [echo.port, banner.port, ...extraPorts], allowPrivate: true },
      ],
    },
    dns: { overrides: { [ODS]: '127.0.0.1', [OMS]: '127.0.0.1', 'echo.example.com': '127.0.0.1' } },
  };
}

beforeAll(async () => {
  upstream = await startHttpsServer({ names: [ODS] });
  echo = await startTcpEcho();
  banner = await startBannerServer('220 smtp.example ready\r\n');
  [gw, jsGw] = await Promise.all([startGateway(gatewayConfig('auto')), startGateway(gatewayConfig('js'))]);
  proxyUrl = `http://127.0.0.1:${gw.port}`;
});

afterAll(async () => {
  await gw?.stop();
  await jsGw?.stop();
  await banner?.close();
  await upstream?.close();
  await echo?.close();
});

describe('CONNECT with real clients', () => {
  it.skipIf(!curl)('curl reaches the allowed workspace endpoint end to end over TLS', async () => {
    const r = await run(curl!, ['-sS', '-x', proxyUrl, '--cacert', upstream.caFile, `https://${ODS}:${upstream.port}/api/logs?api-version=2016-04-01`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, host: `${ODS}:${upstream.port}`, url: '/api/logs?api-version=2016-04-01' });
    const rec = await gw.waitForLog((l) => l.event === 103 && l.verdict === 'allow' && l.target === `${ODS}:${upstream.port}`);
    expect(rec).toMatchObject({ rule: 'ods-test', status: 200, client: '127.0.0.1' });
    // curl sends its TLS close_notify and closes at once; when the server's answering close_notify
    // arrives before close(), curl's kernel resets instead of sending a FIN (seen 1-6 in 300 runs,
    // 279 in 300 with curl slowed by strace). The log says what happened on the wire.
    expect(['done', 'client_error']).toContain(rec.closeCause);
    expect(rec.bytesUp).toBeGreaterThan(200); // ClientHello and request
    expect(rec.bytesDown).toBeGreaterThan(500); // certificate chain and response
  });

  it.skipIf(!curl)('curl to a host outside the allowlist gets 403', async () => {
    const r = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_connect}', '-x', proxyUrl, 'https://example.org/']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('403');
    await gw.waitForLog((l) => l.event === 105 && l.target === 'example.org:443' && l.reason === 'host_not_allowed');
  });

  it.skipIf(!curl)('an allowed host on a port its rule does not list gets 403', async () => {
    const r = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_connect}', '-x', proxyUrl, `https://${ODS}:22/`]);
    expect(r.stdout).toBe('403');
    await gw.waitForLog((l) => l.event === 105 && l.target === `${ODS}:22` && l.reason === 'port_not_allowed');
  });

  it.skipIf(!curl)('an IP-literal destination gets 403', async () => {
    const r = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_connect}', '-x', proxyUrl, `https://127.0.0.1:${upstream.port}/`]);
    expect(r.stdout).toBe('403');
    await gw.waitForLog((l) => l.event === 105 && l.reason === 'ip_literal');
  });

  it.skipIf(!curl)('an allowed name that resolves to 127.0.0.1 without allowPrivate gets 403', async () => {
    const r = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_connect}', '-x', proxyUrl, `https://${OMS}/`]);
    expect(r.stdout).toBe('403');
    await gw.waitForLog((l) => l.event === 105 && l.target === `${OMS}:443` && l.reason === 'private_address' && l.rule === 'azure-public/oms');
  });

  it('undici ProxyAgent fetches through the tunnel', async () => {
    const dispatcher = new ProxyAgent({ uri: proxyUrl, requestTls: { ca: upstream.caPem } });
    try {
      const res = await undiciFetch(`https://${ODS}:${upstream.port}/dataCollectionRules/x`, { method: 'POST', body: 'x'.repeat(10_000), dispatcher });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true, method: 'POST', bodyBytes: 10_000 });
    } finally {
      await dispatcher.close();
    }
  });

  it('undici ProxyAgent sees the 403 for a forbidden host', async () => {
    const dispatcher = new ProxyAgent({ uri: proxyUrl });
    try {
      await expect(undiciFetch('https://example.org/', { dispatcher })).rejects.toThrow();
    } finally {
      await dispatcher.close();
    }
  });

  it('https-proxy-agent (as used by many SDKs) works through the tunnel', async () => {
    const agent = new HttpsProxyAgent(proxyUrl);
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`https://${ODS}:${upstream.port}/hello`, { agent, ca: upstream.caPem }, (res) => {
          let s = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (s += c));
          res.on('end', () => resolve(s));
        })
        .on('error', reject);
    });
    expect(JSON.parse(body)).toMatchObject({ ok: true, url: '/hello' });
    agent.destroy();
  });
});

describe.each([
  ['native', () => gw],
  ['js', () => jsGw],
] as const)('tunnel mechanics (%s relay)', (relay, gateway) => {
  // `relay: auto` is the native relay only where it is built: each test below checks that the
  // relay it is about carried its tunnel (the access record's `relay`, or the relayed metric).
  beforeEach((ctx) => {
    if (relay === 'native') ctx.skip(!native.available, native.skipNote);
  });

  it('forwards bytes sent in the same packet as the CONNECT (non-empty head)', async () => {
    // A real ClientHello (TLS inspection reads it before the relay takes the tunnel).
    const hello = clientHello({ sni: 'echo.example.com', versions: [TLS13, TLS12] });
    const t = await openTunnel(gateway().port, `echo.example.com:${echo.port}`, hello);
    expect(t.status).toBe(200);
    expect(t.head).toBe('HTTP/1.1 200 Connection Established');
    const back = await readBytes(t.socket, hello.length, t.rest);
    expect(back.equals(hello)).toBe(true);
    t.socket.destroy();
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.bytesUp === hello.length && l.bytesDown === hello.length);
    expect(rec.relay).toBe(relay);
  });

  it('carries 32 MiB each way intact, with backpressure', async () => {
    const t = await openTunnel(gateway().port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    const payload = randomBytes(32 * 1024 * 1024);
    const want = createHash('sha256').update(payload).digest('hex');
    const got = createHash('sha256');
    let n = t.rest.length;
    got.update(t.rest);
    const done = new Promise<void>((resolve) => {
      t.socket.on('data', (c: Buffer) => {
        got.update(c);
        n += c.length;
        if (n >= payload.length) resolve();
      });
    });
    const ended = new Promise<void>((resolve) => t.socket.once('end', () => resolve()));
    t.socket.resume();
    t.socket.end(payload);
    await done;
    expect(n).toBe(payload.length);
    expect(got.digest('hex')).toBe(want);
    // The echo's FIN came after the last bytes: it must still reach the client and end the tunnel.
    await ended;
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.bytesUp === payload.length);
    expect(rec).toMatchObject({ bytesDown: payload.length, closeCause: 'done', relay });
  });

  it('passes a half-close through: the client ends its side and still receives the rest', async () => {
    const t = await openTunnel(gateway().port, `echo.example.com:${echo.port}`);
    const chunks: Buffer[] = [t.rest];
    t.socket.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => t.socket.once('end', () => resolve()));
    t.socket.resume();
    t.socket.end('last words');
    await ended; // the echo saw our FIN, wrote everything back, then ended its side
    expect(Buffer.concat(chunks).toString()).toBe('last words');
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.bytesUp === 10 && l.bytesDown === 10);
    expect(rec.closeCause).toBe('done');
    expect(rec.relay).toBe(relay);
  });

  it('ends as done when the client resets after its own FIN, its last bytes delivered', async () => {
    // A client that has closed completely answers bytes still reaching it with a reset (the echo
    // answers our last words after our FIN): that is a normal end, not a client error.
    const t = await openTunnel(gateway().port, `echo.example.com:${echo.port}`);
    t.socket.resume();
    t.socket.end('goodbye');
    await once(t.socket, 'finish'); // our FIN is on the wire
    t.socket.resetAndDestroy();
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.bytesUp === 7);
    expect(rec).toMatchObject({ closeCause: 'done', relay });
  });

  it('relays a destination that speaks first (a banner before any client byte)', async () => {
    const t = await openTunnel(gateway().port, `echo.example.com:${banner.port}`);
    expect(t.status).toBe(200);
    const got = await readBytes(t.socket, 24, t.rest);
    expect(got.toString()).toBe('220 smtp.example ready\r\n');
    t.socket.resume();
    t.socket.end('QUIT\r\n');
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.target === `echo.example.com:${banner.port}`);
    expect(rec).toMatchObject({ bytesUp: 6, bytesDown: 24, closeCause: 'done', relay });
  });

  it('holds bytes for a client that stops reading, then delivers all of them in order', { timeout: 60_000 }, async () => {
    const from = gateway().logs.length;
    const t = await openTunnel(gateway().port, `echo.example.com:${echo.port}`);
    t.socket.pause();
    // Write without reading until the echo's answer is held up: every buffer between the echo and
    // us (the kernel's, which Linux may grow to tens of MiB, and the relay's) is full and the echo
    // cannot write. How much that takes depends on the machine, so we write until it happens.
    let heldUp = false;
    const echoHeldUp = echo.backpressured().then(() => void (heldUp = true));
    const chunks: Buffer[] = [];
    let written = 0;
    while (!heldUp && written < MAX_HOLD_BYTES) {
      const chunk = randomBytes(1024 * 1024);
      chunks.push(chunk);
      written += chunk.length;
      if (!t.socket.write(chunk)) await Promise.race([once(t.socket, 'drain'), echoHeldUp]);
      else await new Promise((r) => setImmediate(r));
    }
    expect(heldUp, `the echo was never held up after ${written} bytes`).toBe(true);
    const payload = Buffer.concat(chunks);
    const back = await readBytes(t.socket, payload.length, t.rest);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    t.socket.destroy();
    // Its own record: the 32 MiB test's would match too when this one wrote 32 MiB.
    const rec = await gateway().waitForLog((l) => l.event === 103 && l.bytesUp === payload.length, 10_000, from);
    expect(rec.bytesDown).toBe(payload.length);
    expect(rec.relay).toBe(relay);
  });

  it('keeps 64 concurrent tunnels apart (every byte reaches its own client)', async () => {
    const relayedBefore = (await metric(gateway().adminPort, 'portcullis_tunnels_relayed_total', { relay })) || 0;
    const tunnels = await Promise.all(Array.from({ length: 64 }, () => openTunnel(gateway().port, `echo.example.com:${echo.port}`)));
    await Promise.all(
      tunnels.map(async (t, i) => {
        const msg = randomBytes(1000 + i * 997);
        t.socket.write(msg);
        const back = await readBytes(t.socket, msg.length, t.rest);
        expect(back.equals(msg)).toBe(true);
        t.socket.destroy();
      }),
    );
    // Counted as each tunnel's access record is written, just after it closes.
    await expect.poll(() => metric(gateway().adminPort, 'portcullis_tunnels_relayed_total', { relay })).toBe(relayedBefore + 64);
  });
});

describe('refusals', () => {
  it('answers malformed CONNECT authorities with 400, never a hang', async () => {
    for (const target of ['nohostport', 'host:', ':443', 'host:99999', 'host:-1', '[::1:443', 'a b:443', 'host:44x']) {
      const r = await rawExchange(gw.port, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect({ target, status: statusOf(r.text) }).toEqual({ target, status: 400 });
      expect(r.closed).toBe(true);
    }
  });

  it('answers 502 when the destination refuses the connection', async () => {
    // The rule allows the echo port; stop nothing — dial a closed port on an allowed host instead.
    const closed = await startTcpEcho();
    const port = closed.port;
    await closed.close();
    await gw.reload(gatewayConfig('auto', [port]));
    const t = await openTunnel(gw.port, `echo.example.com:${port}`);
    expect(t.status).toBe(502);
    t.socket.destroy();
    await gw.waitForLog((l) => l.event === 403 && l.reason === 'connect_refused');
  });
});

/**
 * Relay (upstream, corporate) proxies against a real Squid with Basic authentication
 * (basic_ncsa_auth): tunnels and plain-HTTP requests go through it (its access log shows them),
 * wrong credentials are a 502 PCL_ERR_RELAY_AUTH with its event, a stopped first relay fails over
 * to the second (and the metric shows it down), the bypass list goes direct, and the
 * private-address guard still holds for relayed destinations.
 */
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { startHttpServer, startTcpEcho, type TestServer } from '../helpers/servers.js';
import { requireBinary } from '../helpers/system.js';
import { startSquid, type SquidRelay } from '../helpers/squid.js';

const squid = requireBinary('squid');
const USER = 'portcullis';
const PASSWORD = 'relay-s3cret';

let echo: TestServer;
let web: TestServer;
let dir = '';
const relays: SquidRelay[] = [];
const gateways: GatewayProcess[] = [];

const NAMES = ['echo.test', 'web.test', 'direct.test', 'private.test'];
const hosts = Object.fromEntries(NAMES.map((n) => [n, '127.0.0.1']));

/** A gateway whose relays are `urls` (each with the test user), with `password` for all of them. */
function gatewayConfig(urls: string[], extra: { password?: string; bypass?: string[]; backoffMs?: number } = {}): Record<string, unknown> {
  const passwordFile = join(dir, `pw-${Math.random().toString(36).slice(2)}`);
  writeFileSync(passwordFile, `${extra.password ?? PASSWORD}\n`, { mode: 0o600 });
  return {
    allow: {
      presets: [],
      rules: [
        { name: 'echo', hosts: ['echo.test', 'direct.test'], ports: [echo.port], allowPrivate: true },
        { name: 'web', hosts: ['web.test'], ports: [web.port], allowPrivate: true },
        // Resolves to 127.0.0.1 (dns.overrides) and does not allow it: refused, relay or not.
        { name: 'guarded', hosts: ['private.test'], ports: [echo.port] },
      ],
    },
    dns: { overrides: hosts },
    upstreamProxy: {
      proxies: urls.map((url) => ({ url, username: USER, passwordFile })),
      bypass: extra.bypass ?? [],
      ...(extra.backoffMs !== undefined ? { backoffMs: extra.backoffMs } : {}),
      connectMs: 3000,
    },
  };
}

async function gateway(config: Record<string, unknown>): Promise<GatewayProcess> {
  const gw = await startGateway(config);
  gateways.push(gw);
  return gw;
}

/** One echo round trip through a fresh tunnel; resolves with the proxy's status (and closes the tunnel). */
async function echoThrough(gw: GatewayProcess, authority: string): Promise<{ status: number; head: string }> {
  const t = await openTunnel(gw.port, authority);
  try {
    if (t.status === 200) {
      t.socket.write('ping-through-relay');
      expect((await readBytes(t.socket, 18, t.rest)).toString()).toBe('ping-through-relay');
    }
    return { status: t.status, head: t.head };
  } finally {
    t.socket.destroy();
  }
}

/** A plain-HTTP GET through the gateway: status and body. */
function httpGet(gw: GatewayProcess, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'GET', path: url, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  if (!squid) return;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-relay-'));
  echo = await startTcpEcho();
  web = await startHttpServer();
  relays.push(await startSquid({ users: { [USER]: PASSWORD }, hosts }));
  relays.push(await startSquid({ users: { [USER]: PASSWORD }, hosts }));
}, 60_000);

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await Promise.all(relays.map((r) => r.stop()));
  await echo?.close();
  await web?.close();
});

describe.skipIf(!squid)('relay proxy (Squid with Basic auth)', () => {
  it('tunnels and plain-HTTP requests go through the relay: Squid logs them, the metrics count them', async () => {
    const [relay] = relays;
    if (!relay) throw new Error('no relay');
    const gw = await gateway(gatewayConfig([relay.url]));
    const label = `127.0.0.1:${relay.port}`;

    expect((await echoThrough(gw, `echo.test:${echo.port}`)).status).toBe(200);
    const rec = await gw.waitForLog((r) => r.event === 103 && r.status === 200);
    expect(rec).toMatchObject({ rule: 'echo', upstreamProxy: label });
    // Squid writes a CONNECT's line when the tunnel ends; its user column names who it let through.
    const line = await relay.waitForAccess((l) => l.includes(`CONNECT echo.test:${echo.port}`));
    expect(line).toContain(USER);

    const r = await httpGet(gw, `http://web.test:${web.port}/crl/root.crl`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ url: '/crl/root.crl', host: `web.test:${web.port}` });
    expect(await relay.waitForAccess((l) => l.includes(`GET http://web.test:${web.port}/crl/root.crl`))).toContain(USER);

    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_up', { proxy: label })).toBe(1);
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_connections_total', { proxy: label, kind: 'tunnel' })).toBe(1);
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_connections_total', { proxy: label, kind: 'http' })).toBe(1);
    // The password never reaches the log or the metrics.
    expect(JSON.stringify(gw.logs)).not.toContain(PASSWORD);
  });

  it('wrong relay credentials: 502 PCL_ERR_RELAY_AUTH naming the relay, event 115, for tunnels and plain HTTP', async () => {
    const [relay] = relays;
    if (!relay) throw new Error('no relay');
    const gw = await gateway(gatewayConfig([relay.url], { password: 'not-the-password' }));
    const label = `127.0.0.1:${relay.port}`;

    const t = await echoThrough(gw, `echo.test:${echo.port}`);
    expect(t.status).toBe(502);
    const rec = await gw.waitForLog((r) => r.code === 'PCL_ERR_RELAY_AUTH' && r.kind === 'tunnel');
    expect(rec).toMatchObject({ event: 115, status: 502, reason: 'relay_auth', verdict: 'error' });

    const r = await httpGet(gw, `http://web.test:${web.port}/x`);
    expect(r.status).toBe(502);
    const body = JSON.parse(r.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('PCL_ERR_RELAY_AUTH');
    expect(body.error.message).toContain(label);
    expect(await gw.waitForLog((l) => l.code === 'PCL_ERR_RELAY_AUTH' && l.kind === 'http')).toMatchObject({ event: 115, status: 502 });

    // A 407 is a configuration problem, not an outage: the relay stays up, the failure is counted.
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_up', { proxy: label })).toBe(1);
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_failures_total', { proxy: label, reason: 'auth' })).toBe(2);
    const text = JSON.stringify(gw.logs);
    expect(text).not.toContain('not-the-password');
    expect(text).not.toContain(Buffer.from(`${USER}:not-the-password`).toString('base64'));
  });

  it('two relays, the first stopped: traffic fails over to the second, the first shows down (metric and event 113)', async () => {
    const [first, second] = relays;
    if (!first || !second) throw new Error('no relays');
    const firstUrl = first.url;
    const firstLabel = `127.0.0.1:${first.port}`;
    const secondLabel = `127.0.0.1:${second.port}`;
    await first.stop();
    const gw = await gateway(gatewayConfig([firstUrl, second.url]));

    expect((await echoThrough(gw, `echo.test:${echo.port}`)).status).toBe(200);
    expect(await gw.waitForLog((r) => r.event === 103 && r.status === 200)).toMatchObject({ upstreamProxy: secondLabel });
    const down = await gw.waitForLog((r) => r.event === 113);
    expect(down).toMatchObject({ proxy: firstLabel, reason: 'connect_refused' });
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_up', { proxy: firstLabel })).toBe(0);
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_up', { proxy: secondLabel })).toBe(1);
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_failures_total', { proxy: firstLabel, reason: 'connect_refused' })).toBe(1);

    // While the first is backing off it is not tried again: plain HTTP goes straight to the second.
    const r = await httpGet(gw, `http://web.test:${web.port}/failover`);
    expect(r.status).toBe(200);
    await second.waitForAccess((l) => l.includes(`GET http://web.test:${web.port}/failover`));
    expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_failures_total', { proxy: firstLabel, reason: 'connect_refused' })).toBe(1);

    // Both stopped: 502 PCL_ERR_RELAY_UNAVAILABLE.
    const gw2 = await gateway(gatewayConfig([firstUrl]));
    const t = await echoThrough(gw2, `echo.test:${echo.port}`);
    expect(t.status).toBe(502);
    expect(await gw2.waitForLog((l) => l.code === 'PCL_ERR_RELAY_UNAVAILABLE')).toMatchObject({ event: 116, status: 502 });

    // Restart the first on its port for the tests after this one.
    relays[0] = await startSquid({ users: { [USER]: PASSWORD }, hosts, port: first.port });
  });

  it('the bypass list goes direct; the private-address guard holds for relayed destinations', async () => {
    const [relay] = relays;
    if (!relay) throw new Error('no relay');
    const gw = await gateway(gatewayConfig([relay.url], { bypass: ['direct.test'] }));

    expect((await echoThrough(gw, `direct.test:${echo.port}`)).status).toBe(200);
    const direct = await gw.waitForLog((r) => r.event === 103 && r.target === `direct.test:${echo.port}`);
    expect(direct.upstreamProxy).toBeUndefined();

    // A name that resolves (here, through dns.overrides) to a private address, on a rule without
    // allowPrivate: refused before the relay is asked.
    const guarded = await echoThrough(gw, `private.test:${echo.port}`);
    expect(guarded.status).toBe(403);
    expect(await gw.waitForLog((r) => r.target === `private.test:${echo.port}`)).toMatchObject({ code: 'PCL_ERR_PRIVATE_ADDRESS' });

    // Squid's log, once a later relayed tunnel shows in it, has neither.
    expect((await echoThrough(gw, `echo.test:${echo.port}`)).status).toBe(200);
    await relay.waitForAccess((l) => l.includes(`CONNECT echo.test:${echo.port}`));
    expect(relay.accessLog().filter((l) => l.includes('direct.test') || l.includes('private.test'))).toEqual([]);
  });
});

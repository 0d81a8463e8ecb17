import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startHttpServer, type TestServer } from '../helpers/servers.js';
import { rawExchange, statusOf } from '../helpers/raw.js';
import { requireBinary, run } from '../helpers/system.js';
import { ProxyAgent, request } from 'undici';

const curl = requireBinary('curl');
let web: TestServer;
let gw: GatewayProcess;
let seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  web = await startHttpServer((req, res) => {
    seen.push(req.headers);
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ ok: true, method: req.method, url: req.url, host: req.headers.host, bodyBytes: n });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'keep-alive': 'timeout=5',
        'x-upstream-hop': 'x',
        connection: 'x-upstream-hop',
      });
      res.end(body);
    });
  });
  gw = await startGateway({
    allow: {
      presets: [],
      rules: [{ name: 'crl', hosts: ['crl.example.com'], ports: [web.port], allowPrivate: true }],
    },
    dns: { overrides: { 'crl.example.com': '127.0.0.1', 'other.example.com': '127.0.0.1' } },
  });
});

afterAll(async () => {
  await gw?.stop();
  await web?.close();
});

describe('plain-HTTP forwarding (absolute-form)', () => {
  it.skipIf(!curl)('curl fetches an allowed http:// URL; Host and path are kept', async () => {
    seen = [];
    const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${gw.port}`, `http://crl.example.com:${web.port}/pki/crl/root.crl?x=1`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, method: 'GET', url: '/pki/crl/root.crl?x=1', host: `crl.example.com:${web.port}` });
    const rec = await gw.waitForLog((l) => l.event === 109 && l.verdict === 'allow');
    expect(rec).toMatchObject({ rule: 'crl', status: 200, method: 'GET', target: `crl.example.com:${web.port}` });
  });

  it.skipIf(!curl)('closes the client connection after each response, and curl fetches the next URL on a new one', async () => {
    // One request per plain-HTTP connection (docs/design-notes.md, "the first request head").
    const url = `http://crl.example.com:${web.port}/a`;
    const r = await run(curl!, ['-sv', '-x', `http://127.0.0.1:${gw.port}`, url, url]);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/"url":"\/a"/g)).toHaveLength(2);
    expect(r.stderr.match(/^< Connection: close\r?$/gim)).toHaveLength(2);
    expect(r.stderr).not.toMatch(/Re-using existing connection/i);
    expect(r.stderr.match(/^\* Connected to /gm)).toHaveLength(2);
  });

  it('serves undici through a ProxyAgent (absolute-form, keep-alive pool): every response says Connection: close, none fails', async () => {
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${gw.port}`, proxyTunnel: false });
    try {
      const one = async (i: number): Promise<{ status: number; connection: unknown; url: unknown }> => {
        const r = await request(`http://crl.example.com:${web.port}/u${i}`, { dispatcher: agent });
        const body = (await r.body.json()) as { url?: unknown };
        return { status: r.statusCode, connection: r.headers['connection'], url: body.url };
      };
      const got: Array<{ status: number; connection: unknown; url: unknown }> = [];
      // One after another (undici would reuse a kept-alive socket), then eight at once.
      for (let i = 0; i < 4; i++) got.push(await one(i));
      got.push(...(await Promise.all([4, 5, 6, 7, 8, 9, 10, 11].map(one))));
      expect(got).toEqual([...Array(12).keys()].map((i) => ({ status: 200, connection: 'close', url: `/u${i}` })));
    } finally {
      await agent.close();
    }
  });

  it('strips hop-by-hop headers both ways and never forwards proxy credentials', async () => {
    seen = [];
    const r = await rawExchange(
      gw.port,
      `GET http://crl.example.com:${web.port}/h HTTP/1.1\r\nHost: crl.example.com:${web.port}\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nProxy-Authorization: Basic dTpw\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-End-To-End: kept\r\n\r\n`,
      1_500,
    );
    expect(statusOf(r.text)).toBe(200);
    expect(seen).toHaveLength(1);
    const h = seen[0]!;
    expect(h['x-end-to-end']).toBe('kept');
    expect(h['x-secret-hop']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['te']).toBeUndefined();
    // The upstream named x-upstream-hop in its Connection header: it must not reach the client.
    expect(r.text.toLowerCase()).not.toContain('x-upstream-hop');
  });

  it('forwards a chunked POST body', async () => {
    const r = await rawExchange(
      gw.port,
      `POST http://crl.example.com:${web.port}/p HTTP/1.1\r\nHost: crl.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
    );
    expect(statusOf(r.text)).toBe(200);
    expect(r.text).toContain('"bodyBytes":11');
  });

  it('refuses a host outside the allowlist with 403 and closes; a request pipelined behind it is not processed', async () => {
    seen = [];
    const r = await rawExchange(
      gw.port,
      `GET http://other.example.com:${web.port}/ HTTP/1.1\r\nHost: other.example.com\r\n\r\nGET http://crl.example.com:${web.port}/ok HTTP/1.1\r\nHost: crl.example.com\r\n\r\n`,
    );
    expect(statusOf(r.text)).toBe(403);
    expect(r.text).toContain('PCL_ERR_TARGET_FORBIDDEN');
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(r.closed).toBe(true);
    expect(r.text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(seen).toHaveLength(0);
  });

  const ambiguous: Array<[string, string]> = [
    ['Content-Length with Transfer-Encoding', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['duplicate Content-Length', 'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
    ['Content-Length list', 'Content-Length: 5, 5\r\n\r\nhello'],
    ['obs-fold header', 'X-Folded: a\r\n b\r\n\r\n'],
    ['bare LF line endings', 'X-A: b\n\n'],
  ];
  for (const [name, tail] of ambiguous) {
    it(`rejects ambiguous framing with 400: ${name}`, async () => {
      const r = await rawExchange(gw.port, `POST http://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\n${tail}`);
      expect(statusOf(r.text)).toBe(400);
      expect(r.closed).toBe(true);
    });
  }

  it('answers a malformed chunked body with 400 and closes (the request itself, not one behind it)', async () => {
    const r = await rawExchange(
      gw.port,
      `POST http://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    );
    expect(statusOf(r.text)).toBe(400);
    expect(r.text).toContain('PCL_ERR_PARSE');
    expect(r.closed).toBe(true);
  });

  it('answers 501 to a transfer-coding it would have to re-frame', async () => {
    const r = await rawExchange(
      gw.port,
      `POST http://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      1_500,
    );
    expect(statusOf(r.text)).toBe(501);
  });

  it('answers an origin-form request on the proxy port with 400 and event 104, not a hang', async () => {
    const r = await rawExchange(gw.port, 'GET /index.html HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n');
    expect(statusOf(r.text)).toBe(400);
    expect(r.text).toContain('PCL_ERR_NOT_PROXY_REQUEST');
    await gw.waitForLog((l) => l.event === 104);
  });

  it('refuses TRACE with 405', async () => {
    const r = await rawExchange(gw.port, `TRACE http://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\nConnection: close\r\n\r\n`);
    expect(statusOf(r.text)).toBe(405);
  });

  it('refuses https:// absolute-form (that is what CONNECT is for) with 400', async () => {
    const r = await rawExchange(gw.port, `GET https://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\nConnection: close\r\n\r\n`);
    expect(statusOf(r.text)).toBe(400);
  });

  it('answers oversized headers with 431', async () => {
    const r = await rawExchange(gw.port, `GET http://crl.example.com:${web.port}/ HTTP/1.1\r\nHost: crl.example.com\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(statusOf(r.text)).toBe(431);
  });
});

describe('plain-HTTP upstream failures', () => {
  it('answers 502 when the destination refuses and 504 when it does not answer in time', async () => {
    const gone = await startHttpServer();
    const refusedPort = gone.port;
    await gone.close();
    const silent = await startHttpServer(() => {
      // never answers
    });
    const g = await startGateway({
      proxy: { timeouts: { upstreamResponseMs: 500 } },
      allow: { presets: [], rules: [{ name: 'up', hosts: ['up.example.com'], ports: [refusedPort, silent.port], allowPrivate: true }] },
      dns: { overrides: { 'up.example.com': '127.0.0.1' } },
    });
    try {
      const refused = await rawExchange(g.port, `GET http://up.example.com:${refusedPort}/ HTTP/1.1\r\nHost: up.example.com\r\nConnection: close\r\n\r\n`);
      expect(statusOf(refused.text)).toBe(502);
      const slow = await rawExchange(g.port, `GET http://up.example.com:${silent.port}/ HTTP/1.1\r\nHost: up.example.com\r\nConnection: close\r\n\r\n`);
      expect(statusOf(slow.text)).toBe(504);
      await g.waitForLog((l) => l.event === 403 && l.reason === 'connect_refused');
      await g.waitForLog((l) => l.event === 403 && l.reason === 'upstream_timeout');
    } finally {
      await g.stop();
      await silent.close();
    }
  });
});

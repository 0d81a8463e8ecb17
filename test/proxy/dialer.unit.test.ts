/**
 * The dialer seam, in process: CONNECT and plain HTTP both reach the destination through the
 * route's dialer, and both try every vetted address in order (the first one here refuses).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { compilePolicy } from '../../src/policy/index.js';
import { Resolver, toResolved, type Dialer, type ResolvedAddress } from '../../src/dial/index.js';
import { directDialer } from '../../src/proxy/server.js';
import { ProxyServer, noopObserver, type AccessRecord } from '../../src/proxy/index.js';
import { createLogger } from '../../src/log/logger.js';
import { startHttpServer, type TestServer } from '../helpers/servers.js';
import { openTunnel, rawExchange, statusOf } from '../helpers/raw.js';

const HOST = 'multi.example.com';

/** Two addresses for HOST, as a real multi-address DNS answer: 127.0.0.2 (nothing listens) first. */
class TwoAddressResolver extends Resolver {
  override resolve(host: string): Promise<readonly ResolvedAddress[]> {
    if (host === HOST) return Promise.resolve([toResolved('127.0.0.2'), toResolved('127.0.0.1')]);
    return super.resolve(host);
  }
}

let web: TestServer;
let proxy: ProxyServer;
let port: number;
const records: AccessRecord[] = [];
const used: string[] = [];

beforeAll(async () => {
  web = await startHttpServer();
  const config = parseConfig(
    stringify({
      proxy: { listen: ['127.0.0.1:0'] },
      allow: { presets: [], rules: [{ name: 'multi', hosts: [HOST], ports: [web.port], allowPrivate: true }] },
      log: { level: 'silent', access: false },
    }),
    { source: 'test', env: {} },
  );
  // The direct dialer, wrapped to see which entry point each kind of request used.
  const createDialer = (c: typeof config.proxy): Dialer => {
    const inner = directDialer(c);
    return {
      kind: inner.kind,
      dispatcher: inner.dispatcher,
      connect: (t) => (used.push('connect'), inner.connect(t)),
      origin: (t) => (used.push('dispatch'), inner.origin(t)),
      close: () => inner.close(),
      destroy: () => inner.destroy(),
    };
  };
  proxy = new ProxyServer({
    config: config.proxy,
    policy: compilePolicy(config),
    resolver: new TwoAddressResolver({ overrides: {}, timeoutMs: 1_000, cacheTtlMs: 0 }),
    logger: createLogger({ level: 'silent' }).logger,
    accessLog: false,
    observer: { ...noopObserver, access: (r) => records.push({ ...r }) },
    createDialer,
  });
  const [bound] = await proxy.listen();
  port = bound?.port ?? 0;
});

afterAll(async () => {
  await proxy?.drain(0);
  await web?.close();
});

describe('dialer seam', () => {
  it('plain HTTP falls through a refusing first address to the next vetted one', async () => {
    used.length = 0;
    const r = await rawExchange(port, `GET http://${HOST}:${web.port}/x HTTP/1.1\r\nHost: ${HOST}:${web.port}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(r.text)).toBe(200);
    expect(r.text).toContain('"url":"/x"');
    expect(used).toEqual(['dispatch']);
    expect(records.at(-1)).toMatchObject({ kind: 'http', verdict: 'allow', status: 200, rule: 'multi' });
  });

  it('CONNECT falls through the same way, through the same dialer', async () => {
    used.length = 0;
    const t = await openTunnel(port, `${HOST}:${web.port}`);
    expect(t.status).toBe(200);
    const body = await new Promise<string>((resolve) => {
      let text = '';
      t.socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      t.socket.on('close', () => resolve(text));
      t.socket.resume();
      t.socket.write(`GET /y HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    });
    expect(statusOf(body)).toBe(200);
    expect(body).toContain('"url":"/y"');
    expect(used).toEqual(['connect']);
  });
});

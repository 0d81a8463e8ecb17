import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { Agent, fetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { openFdCount, waitForFdCount } from '../helpers/fds.js';
import { startBlackhole, startHttpServer, startHttpsServer, startTcpEcho } from '../helpers/servers.js';
import { testCA } from '../helpers/tls.js';

const execFileAsync = promisify(execFile);
const CURL = '/usr/bin/curl';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('test CA', () => {
  it('is memoised, issues leaf certs with SANs and EKU, and caches them per name set', async () => {
    const ca = await testCA();
    expect(await testCA()).toBe(ca);
    expect(existsSync(ca.caFile)).toBe(true);
    const caX = new (await import('node:crypto')).X509Certificate(ca.caPem);
    expect(caX.ca).toBe(true);

    const t0 = Date.now();
    const leaf = await ca.issue(['svc.test', '127.0.0.1']);
    const firstMs = Date.now() - t0;
    const again = await ca.issue(['127.0.0.1', 'svc.test']);
    expect(again).toBe(leaf);
    expect(firstMs).toBeLessThan(5000);

    const { X509Certificate } = await import('node:crypto');
    const x = new X509Certificate(leaf.certPem);
    expect(x.subjectAltName).toContain('DNS:svc.test');
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    expect(x.checkIssued(caX)).toBe(true);
    expect(x.verify(caX.publicKey)).toBe(true);
    expect(x.ca).toBe(false);
    expect(new Date(x.validFrom).getTime()).toBeLessThan(Date.now() - 3600_000);
    expect(new Date(x.validTo).getTime()).toBeGreaterThan(Date.now() + 20 * 24 * 3600_000);
  });

  it('issues client certs with the requested subject', async () => {
    const ca = await testCA();
    const c = await ca.issueClient({
      commonNames: ['00000000-0000-0000-0000-000000000000', 'agent-1'],
      organizationalUnit: 'Microsoft Monitoring Agent',
      organization: 'Microsoft',
    });
    const { X509Certificate } = await import('node:crypto');
    const x = new X509Certificate(c.certPem);
    expect(x.subject).toContain('OU=Microsoft Monitoring Agent');
    expect(x.subject).toContain('CN=agent-1');
    expect(x.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
  });
});

describe('HTTPS fixture', () => {
  it('answers undici fetch that trusts the test CA, with the default JSON body', async () => {
    const srv = await startHttpsServer({ names: ['localhost', '127.0.0.1'] });
    cleanups.push(() => srv.close());
    const agent = new Agent({ connect: { ca: srv.caPem } });
    cleanups.push(() => agent.close());
    const res = await fetch(`https://127.0.0.1:${srv.port}/api/logs?x=1`, {
      method: 'POST',
      body: 'x'.repeat(12345),
      dispatcher: agent,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      ok: true,
      method: 'POST',
      url: '/api/logs?x=1',
      host: `127.0.0.1:${srv.port}`,
      bodyBytes: 12345,
    });
  });

  it('is refused by a client that does not trust the CA', async () => {
    const srv = await startHttpsServer({ names: ['127.0.0.1'] });
    cleanups.push(() => srv.close());
    const agent = new Agent();
    cleanups.push(() => agent.close());
    const err = await fetch(`https://127.0.0.1:${srv.port}/`, { dispatcher: agent }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error & { cause?: unknown }).cause)).toMatch(/certificate/i);
  });

  it.runIf(existsSync(CURL))('answers curl --cacert for a DNS SAN, and curl rejects a name not in the cert', async () => {
    const srv = await startHttpsServer({ names: ['ws1.ods.opinsights.azure.com'] });
    cleanups.push(() => srv.close());
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const host = 'ws1.ods.opinsights.azure.com';
    const { stdout } = await execFileAsync(
      CURL,
      ['-sS', '--noproxy', '*', '--max-time', '10', '--cacert', srv.caFile, '--resolve', `${host}:${srv.port}:127.0.0.1`, `https://${host}:${srv.port}/hello`],
      { env },
    );
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, method: 'GET', url: '/hello', host: `${host}:${srv.port}` });

    const wrong = 'other.example.com';
    const failed = await execFileAsync(
      CURL,
      ['-sS', '--noproxy', '*', '--max-time', '10', '--cacert', srv.caFile, '--resolve', `${wrong}:${srv.port}:127.0.0.1`, `https://${wrong}:${srv.port}/`],
      { env },
    ).catch((e: { code?: number; stderr?: string }) => e);
    expect((failed as { code?: number }).code).toBe(60); // peer certificate cannot be authenticated
  });

  it('close() destroys open connections, including a stalled TLS handshake', async () => {
    const srv = await startHttpsServer({ names: ['127.0.0.1'] });
    const before = openFdCount();
    const secure = tls.connect({ host: '127.0.0.1', port: srv.port, ca: srv.caPem });
    secure.on('error', () => {});
    await new Promise((r) => secure.once('secureConnect', r));
    const raw = net.connect({ host: '127.0.0.1', port: srv.port }); // never sends a ClientHello
    raw.on('error', () => {});
    await new Promise((r) => raw.once('connect', r));
    // The client's 'connect' comes before the server's accept: wait for the server to count both.
    await expect.poll(() => srv.connections).toBe(2);

    const closedBoth = Promise.all([new Promise((r) => secure.once('close', r)), new Promise((r) => raw.once('close', r))]);
    await srv.close();
    await closedBoth;
    expect(await waitForFdCount(before)).toBeLessThanOrEqual(before);
  });
});

describe('HTTP fixture', () => {
  it('default handler reports method, url, Host and body size; custom handler is used', async () => {
    const srv = await startHttpServer();
    cleanups.push(() => srv.close());
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'PUT', path: '/x', headers: { host: 'crl.microsoft.com' } }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.end('abc');
    });
    expect(JSON.parse(body)).toEqual({ ok: true, method: 'PUT', url: '/x', host: 'crl.microsoft.com', bodyBytes: 3 });

    const custom = await startHttpServer((_req, res) => {
      res.writeHead(418);
      res.end();
    });
    cleanups.push(() => custom.close());
    const res = await fetch(`http://127.0.0.1:${custom.port}/`);
    expect(res.status).toBe(418);
  });
});

describe('TCP echo and blackhole fixtures', () => {
  it('echo returns the bytes and ends only after the client half-closes', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    const s = net.connect({ host: '127.0.0.1', port: echo.port, allowHalfOpen: true });
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    const chunks: Buffer[] = [];
    s.on('data', (b: Buffer) => chunks.push(b));
    let ended = false;
    s.once('end', () => (ended = true));
    s.write(Buffer.alloc(256 * 1024, 7));
    // Everything we wrote came back, and still no end: the echo waits for our half-close.
    const echoed = (): number => chunks.reduce((n, c) => n + c.length, 0);
    await expect.poll(echoed, { timeout: 5_000 }).toBe(256 * 1024);
    expect(ended).toBe(false);
    s.end(Buffer.from('tail'));
    await new Promise((r) => s.once('end', r));
    const all = Buffer.concat(chunks);
    expect(all.length).toBe(256 * 1024 + 4);
    expect(all.subarray(-4).toString()).toBe('tail');
  });

  it('blackhole: a connect neither succeeds nor is refused', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const s = net.connect({ host: '127.0.0.1', port: hole.port });
    s.on('error', () => {});
    cleanups.push(() => s.destroy());
    const outcome = await new Promise<string>((resolve) => {
      // A bounded negative check, not synchronisation: nothing may happen within 300 ms.
      const t = setTimeout(() => resolve('pending'), 300);
      s.once('connect', () => (clearTimeout(t), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(t), resolve(e.code ?? 'error')));
    });
    expect(outcome).toBe('pending');
  });
});

/**
 * Proxy Basic authentication and group allowlists, with real curl against a real gateway process:
 * users from an htpasswd file made by Apache's own `htpasswd` (bcrypt, apr1, SHA).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startHttpServer, type TestServer } from '../helpers/servers.js';
import { requireBinary, run } from '../helpers/system.js';

const curl = requireBinary('curl');
const htpasswd = requireBinary('htpasswd');
const ready = curl !== null && htpasswd !== null;

const USERS = {
  alice: { password: 'alice-s3cret-bcrypt', flag: '-B' },
  bob: { password: 'bob-s3cret-apr1', flag: '-m' },
  carol: { password: 'carol-s3cret-sha', flag: '-s' },
  erin: { password: 'erin-s3cret-bcrypt', flag: '-B' },
} as const;
type User = keyof typeof USERS;

let web: TestServer;
let gw: GatewayProcess;
let config: Record<string, unknown>;
let dir: string;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  if (!ready) return;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-auth-'));
  const lines: string[] = ['# made by htpasswd (apache2-utils)'];
  for (const [user, u] of Object.entries(USERS)) {
    const r = await run(htpasswd, ['-nb', u.flag, user, u.password]);
    expect(r.code, r.stderr).toBe(0);
    lines.push(r.stdout.trim());
  }
  lines.push('dave:abcdefghijklm'); // crypt(3) DES: not supported, skipped with a warning
  const file = join(dir, 'htpasswd');
  writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
  web = await startHttpServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello from ${req.headers.host}`);
  });
  config = {
    proxy: { auth: { htpasswdFile: file, realm: 'Portcullis test', maxFailuresPerMinute: 4 } },
    allow: {
      presets: [],
      rules: [
        { name: 'x', hosts: ['x.example.com'], ports: [web.port], allowPrivate: true },
        { name: 'y', hosts: ['y.example.com'], ports: [web.port], allowPrivate: true },
      ],
    },
    clients: {
      groups: [
        { name: 'only-x', users: ['alice'], rules: ['x'] },
        { name: 'only-y', users: ['bob'], rules: ['y'] },
      ],
    },
    dns: { overrides: { 'x.example.com': '127.0.0.1', 'y.example.com': '127.0.0.1' } },
  };
  gw = await startGateway(config);
});

afterAll(async () => {
  await gw?.stop();
  await web?.close();
});

interface CurlResult {
  /** The final response's status (0 when none). */
  status: number;
  /** The CONNECT response's status (0 without a tunnel). */
  connect: number;
  headers: string;
  body: string;
}

async function viaProxy(opts: { user?: User | `${string}:${string}`; host: 'x' | 'y'; tunnel: boolean; from?: string }): Promise<CurlResult> {
  const args = ['-sS', '-D', '-', '-w', '\n%{http_code} %{http_connect}', '-x', `http://127.0.0.1:${gw.port}`];
  if (opts.tunnel) args.push('-p');
  if (opts.from !== undefined) args.push('--interface', opts.from);
  if (opts.user !== undefined) {
    const [name, pw] = opts.user.includes(':') ? opts.user.split(':') : [opts.user, USERS[opts.user as User].password];
    args.push('--proxy-user', `${name}:${pw}`);
  }
  args.push(`http://${opts.host}.example.com:${web.port}/`);
  const r = await run(curl!, args);
  const lastNl = r.stdout.lastIndexOf('\n');
  const [status = '0', connect = '0'] = r.stdout.slice(lastNl + 1).split(' ');
  return { status: Number(status), connect: Number(connect), headers: r.stdout.slice(0, lastNl), body: r.stdout.slice(0, lastNl) };
}

describe.skipIf(!ready)('proxy Basic authentication (curl --proxy-user)', () => {
  it('answers 407 with Proxy-Authenticate and the realm when credentials are missing: CONNECT and plain HTTP', async () => {
    const plain = await viaProxy({ host: 'x', tunnel: false });
    expect(plain.status).toBe(407);
    expect(plain.headers).toMatch(/proxy-authenticate: Basic realm="Portcullis test"/i);
    const tunnel = await viaProxy({ host: 'x', tunnel: true });
    expect(tunnel.connect).toBe(407);
    expect(tunnel.headers).toMatch(/proxy-authenticate: Basic realm="Portcullis test"/i);
    const rec = await gw.waitForLog((r) => r.code === 'PCL_ERR_PROXY_AUTH_REQUIRED' && r.method === 'CONNECT');
    expect(rec).toMatchObject({ event: 117, status: 407, reason: 'proxy_auth_required' });
  });

  it('lets each user of the htpasswd file in with the right password (bcrypt, apr1, SHA), for CONNECT and plain HTTP', async () => {
    for (const [user, host] of [
      ['alice', 'x'],
      ['bob', 'y'],
      ['carol', 'x'],
    ] as const) {
      const plain = await viaProxy({ user, host, tunnel: false });
      expect(plain.status, `${user} plain`).toBe(200);
      expect(plain.body).toContain(`hello from ${host}.example.com`);
      const tunnel = await viaProxy({ user, host, tunnel: true });
      expect(tunnel.connect, `${user} CONNECT`).toBe(200);
      expect(tunnel.status, `${user} through the tunnel`).toBe(200);
    }
    // The access log names the user; the destination never saw the proxy credentials.
    const rec = await gw.waitForLog((r) => r.event === 103 && r.identity === 'bob' && r.verdict === 'allow');
    expect(rec.rule).toBe('y');
    await gw.waitForLog((r) => r.event === 109 && r.identity === 'carol');
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) expect(h['proxy-authorization']).toBeUndefined();
  });

  it('answers 407 to a wrong password and to an unknown user, and logs the event without the password', async () => {
    const before = gw.logs.length;
    const wrong = await viaProxy({ user: 'alice:not-her-password', host: 'x', tunnel: true });
    expect(wrong.connect).toBe(407);
    const unknown = await viaProxy({ user: 'mallory:whatever', host: 'x', tunnel: false });
    expect(unknown.status).toBe(407);
    const rec = await gw.waitForLog((r) => r.code === 'PCL_ERR_PROXY_AUTH_FAILED' && r.method === 'CONNECT', 10_000, before);
    expect(rec).toMatchObject({ event: 117, authUser: 'alice' });
    const other = await gw.waitForLog((r) => r.code === 'PCL_ERR_PROXY_AUTH_FAILED' && r.method === 'GET', 10_000, before);
    // A name the file does not know may be a password typed in the wrong field: not logged.
    expect(other.authUser).toBeUndefined();
  });

  it('group allowlists: alice may reach x and not y, bob the reverse; carol (no group) both', async () => {
    expect((await viaProxy({ user: 'alice', host: 'x', tunnel: true })).status).toBe(200);
    const aliceY = await viaProxy({ user: 'alice', host: 'y', tunnel: true });
    expect(aliceY.connect).toBe(403);
    expect((await viaProxy({ user: 'bob', host: 'y', tunnel: false })).status).toBe(200);
    const bobX = await viaProxy({ user: 'bob', host: 'x', tunnel: false });
    expect(bobX.status).toBe(403);
    expect(bobX.body).toContain('PCL_ERR_TARGET_FORBIDDEN');
    expect(bobX.body).toContain('bob is in group only-y, whose rules do not allow this destination');
    expect((await viaProxy({ user: 'carol', host: 'y', tunnel: true })).status).toBe(200);
    const rec = await gw.waitForLog((r) => r.event === 105 && r.identity === 'alice' && r.target === `y.example.com:${web.port}`);
    expect(rec).toMatchObject({
      verdict: 'deny',
      reason: 'host_not_allowed',
      code: 'PCL_ERR_TARGET_FORBIDDEN',
      detail: expect.stringContaining('group only-x'),
    });
  });

  it('limits failed attempts per client address: past the limit 429, without verifying; a remembered login still works', async () => {
    // 127.0.0.2: an address of its own, so the other tests' failures do not count.
    const from = '127.0.0.2';
    for (let i = 0; i < 4; i++) expect((await viaProxy({ user: 'bob:wrong', host: 'y', tunnel: false, from })).status).toBe(407);
    const limited = await viaProxy({ user: 'bob:wrong', host: 'y', tunnel: true, from });
    expect(limited.connect).toBe(429);
    expect(limited.headers).toMatch(/retry-after: 60/i);
    // The right password, never verified before: not verified while the address is limited.
    expect((await viaProxy({ user: 'erin', host: 'y', tunnel: false, from })).status).toBe(429);
    // A login verified a moment ago (from 127.0.0.1) is remembered: no bcrypt, so it still works.
    expect((await viaProxy({ user: 'bob', host: 'y', tunnel: false, from })).status).toBe(200);
    expect((await viaProxy({ user: 'alice:still-wrong', host: 'x', tunnel: false, from })).status).toBe(429);
    const rec = await gw.waitForLog((r) => r.code === 'PCL_ERR_PROXY_AUTH_RATE_LIMITED');
    expect(rec).toMatchObject({ event: 118, status: 429, client: from });
    // Another address is not affected.
    expect((await viaProxy({ user: 'erin', host: 'x', tunnel: false })).status).toBe(200);
  });

  it('never writes a password (or the encoded header) to its log output', async () => {
    expect(gw.logs.some((r) => r.event === 120 && r.msg === 'proxy users loaded' && r.users === 4)).toBe(true);
    expect(gw.logs.some((r) => r.event === 120 && String(r.msg).includes('unsupported hash scheme'))).toBe(true);
    const text = JSON.stringify(gw.logs);
    for (const [user, u] of Object.entries(USERS)) {
      expect(text).not.toContain(u.password);
      expect(text).not.toContain(Buffer.from(`${user}:${u.password}`).toString('base64'));
    }
    for (const pw of ['not-her-password', 'whatever', 'still-wrong']) expect(text).not.toContain(pw);
    expect(text.toLowerCase()).not.toContain('proxy-authorization');
  });

  it('a reload (SIGHUP) reads the htpasswd file again: a new user is in, a removed one out at once (its cached login too)', async () => {
    expect((await viaProxy({ user: 'carol', host: 'x', tunnel: false })).status).toBe(200);
    const r = await run(htpasswd!, ['-nbB', 'frank', 'frank-s3cret']);
    const file = join(dir, 'htpasswd-2');
    writeFileSync(file, r.stdout.trim() + '\n', { mode: 0o600 });
    const proxy = config.proxy as { auth: Record<string, unknown> };
    await gw.reload({ ...config, proxy: { ...proxy, auth: { ...proxy.auth, htpasswdFile: file } } });
    expect(gw.logs.some((l) => String(l.msg).startsWith('reload refused'))).toBe(false);
    expect((await viaProxy({ user: 'frank:frank-s3cret', host: 'y', tunnel: true })).status).toBe(200);
    expect((await viaProxy({ user: 'carol', host: 'x', tunnel: false })).status).toBe(407);
    // A file that cannot be read refuses the reload (event 401) and keeps the users in force.
    await gw.reload({ ...config, proxy: { ...proxy, auth: { ...proxy.auth, htpasswdFile: join(dir, 'missing') } } });
    const refused = await gw.waitForLog((l) => String(l.msg).startsWith('reload refused'));
    expect(refused.event).toBe(401);
    expect((await viaProxy({ user: 'frank:frank-s3cret', host: 'x', tunnel: false })).status).toBe(200);
  });

  it('does not start on an htpasswd file it cannot read, and names the key and file (event 401)', async () => {
    const g = spawnGateway({ proxy: { auth: { htpasswdFile: join(dir, 'nope') } } });
    // Refused by the config checks before anything binds (EX_CONFIG), like any invalid config.
    expect(await g.exited).toBe(78);
    const line = JSON.stringify(await g.waitForLog((r) => r.event === 401 && r.msg === 'invalid configuration'));
    expect(line).toContain('proxy.auth.htpasswdFile');
    expect(line).toContain(join(dir, 'nope'));
  });
});

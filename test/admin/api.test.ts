/**
 * The admin API against a real gateway process: token checks, every resource's round trip, an
 * invalid change refused with nothing written, a hand-broken file refused on reload (event 401),
 * concurrent changes serialised, and the operator's comments and key order kept throughout.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel } from '../helpers/raw.js';
import { apiClient, commentedConfig, commentsOf, fileText, startWithCommentedFile, TOKEN, topLevelKeys } from './helpers.js';

let echo: TestServer;
let gw: GatewayProcess;
let api: ReturnType<typeof apiClient>;
let original: string;

beforeAll(async () => {
  echo = await startTcpEcho();
  gw = await startWithCommentedFile(echo.port);
  api = apiClient(gw.adminPort);
  original = fileText(gw);
});

afterAll(async () => {
  await gw.stop('SIGKILL');
  await echo.close();
});

/** Nothing the operator wrote is lost: every comment, in order, and the top-level keys in their order. */
function expectOperatorTextKept(): void {
  const now = fileText(gw);
  expect(commentsOf(now)).toEqual(commentsOf(original));
  expect(topLevelKeys(now).filter((k) => topLevelKeys(original).includes(k))).toEqual(topLevelKeys(original));
}

describe('auth', () => {
  it('refuses a missing or wrong token with 401 and event 204, never logging the token; the OpenAPI document needs none', async () => {
    const since = gw.logs.length;
    const none = await apiClient(gw.adminPort, null)('GET', '/api/v1/config');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: { code: 'PCL_ERR_API_AUTH' } });
    const wrong = await apiClient(gw.adminPort, 'not-the-token-but-long-enough')('POST', '/api/v1/allow/rules', { hosts: ['x.example.com'] });
    expect(wrong.status).toBe(401);
    const line = await gw.waitForLog((r) => r.event === 204 && r.why === 'wrong token', 5_000, since);
    expect(line).toMatchObject({ code: 'PCL_ERR_API_AUTH', method: 'POST', path: '/api/v1/allow/rules' });
    expect(JSON.stringify(gw.logs.slice(since))).not.toContain('not-the-token-but-long-enough');
    expect(fileText(gw)).toBe(original);
    // The scheme is case-insensitive (RFC 7235).
    expect((await apiClient(gw.adminPort, null)('GET', '/api/v1/status', undefined, { authorization: `bearer ${TOKEN}` })).status).toBe(200);
    const doc = await apiClient(gw.adminPort, null)('GET', '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body).toMatchObject({ openapi: '3.0.3' });
  });
});

describe('resources', () => {
  it('config: the whole configuration with secrets redacted, one key by path, and a PUT that answers with what changed', async () => {
    const all = await api('GET', '/api/v1/config');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ admin: { token: '[redacted]' }, proxy: { timeouts: { idleMs: 300000 } } });
    expect(JSON.stringify(all.body)).not.toContain(TOKEN);
    expect((await api('GET', '/api/v1/config/proxy.timeouts.idleMs')).body).toEqual({ path: 'proxy.timeouts.idleMs', value: 300000 });
    expect((await api('GET', '/api/v1/config/admin.token')).body).toEqual({ path: 'admin.token', value: '[redacted]' });
    expect((await api('GET', '/api/v1/config/proxy.nope')).status).toBe(404);

    const set = await api('PUT', '/api/v1/config/proxy.timeouts.idleMs', { value: 120000 });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ written: true, applied: true, changed: [{ path: 'proxy.timeouts.idleMs', before: 300000, after: 120000 }] });
    expect((await api('GET', '/api/v1/config/proxy.timeouts.idleMs')).body).toMatchObject({ value: 120000 });
    expect(fileText(gw)).toMatch(/idleMs: 120000 +# five minutes/);
    await gw.waitForLog((r) => r.event === 203 && r.action === 'config.set');
    expectOperatorTextKept();
  });

  it('an invalid change is refused with the issues (400, event 205) and nothing is written', async () => {
    const before = fileText(gw);
    const since = gw.logs.length;
    const bad = await api('PUT', '/api/v1/config/proxy.timeouts.idleMs', { value: -1 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'PCL_ERR_API_INVALID' }, issues: [{ path: 'proxy.timeouts.idleMs' }] });
    const wild = await api('POST', '/api/v1/allow/rules', { hosts: ['*.com'] });
    expect(wild.status).toBe(400);
    expect(wild.body).toMatchObject({ error: { code: 'PCL_ERR_API_INVALID' } });
    const shape = await api('POST', '/api/v1/allow/rules', { hosts: ['a.example.com'], bogus: true });
    expect(shape.status).toBe(400);
    expect(shape.body).toMatchObject({ error: { code: 'PCL_ERR_API_BAD_REQUEST' } });
    await gw.waitForLog((r) => r.event === 205 && r.code === 'PCL_ERR_API_INVALID', 5_000, since);
    expect(fileText(gw)).toBe(before);
    expect((await api('GET', '/api/v1/config/proxy.timeouts.idleMs')).body).toMatchObject({ value: 120000 });
  });

  it('allow: "allow this host" is one call; hosts, rules, presets and workspaces round-trip', async () => {
    const add = await api('POST', '/api/v1/allow/rules', { hosts: ['a.example.com'] });
    expect(add.status).toBe(200);
    expect(add.body).toMatchObject({ written: true, applied: true, changed: [{ path: 'allow.rules' }] });
    expect((await api('GET', '/api/v1/allow/rules/allowed-hosts')).body).toEqual({
      name: 'allowed-hosts',
      hosts: ['a.example.com'],
      ports: [443],
      allowPrivate: false,
      mode: 'enforce',
    });
    // Adding to an existing rule, with a port; again is a no-op that writes nothing.
    expect((await api('POST', '/api/v1/allow/rules', { name: 'echo', hosts: ['new.example.com'], ports: [8443] })).status).toBe(200);
    const again = await api('POST', '/api/v1/allow/rules', { name: 'echo', hosts: ['new.example.com'] });
    expect(again.body).toMatchObject({ written: false, applied: false, changed: [] });
    const hosts = (await api('GET', '/api/v1/allow/hosts')).body.hosts;
    expect(hosts).toEqual(
      expect.arrayContaining([
        { host: 'new.example.com', rule: 'echo', ports: [echo.port, 8443] },
        { host: 'a.example.com', rule: 'allowed-hosts', ports: [443] },
      ]),
    );
    // Remove a host from every rule; the rule left empty goes too.
    const rm = await api('DELETE', '/api/v1/allow/hosts/a.example.com');
    expect(rm.body).toMatchObject({ message: expect.stringContaining('now empty and removed: allowed-hosts') });
    expect((await api('GET', '/api/v1/allow/rules/allowed-hosts')).status).toBe(404);
    expect((await api('DELETE', '/api/v1/allow/hosts/a.example.com')).body).toMatchObject({ error: { code: 'PCL_ERR_API_NOT_FOUND' } });
    expect((await api('DELETE', '/api/v1/allow/rules/echo/hosts/new.example.com')).status).toBe(200);
    expect((await api('POST', '/api/v1/allow/rules', { name: 'temp', hosts: ['t.example.com'], ports: [80] })).status).toBe(200);
    expect((await api('DELETE', '/api/v1/allow/rules/temp')).status).toBe(200);

    expect((await api('POST', '/api/v1/allow/presets', { preset: 'azure-usgov' })).status).toBe(200);
    expect((await api('GET', '/api/v1/allow/presets')).body).toEqual({ presets: ['azure-public', 'azure-usgov'] });
    expect((await api('POST', '/api/v1/allow/presets', { preset: 'azure-mars' })).status).toBe(400);
    expect((await api('DELETE', '/api/v1/allow/presets/azure-usgov')).status).toBe(200);

    const ws = '4f0c7d1e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';
    expect((await api('POST', '/api/v1/allow/workspaces', { id: ws, region: 'westeurope' })).status).toBe(200);
    expect((await api('GET', '/api/v1/allow/workspaces')).body).toEqual({ workspaces: [{ id: ws, region: 'westeurope' }] });
    expect((await api('POST', '/api/v1/allow/workspaces', { id: 'not-a-guid' })).body).toMatchObject({ error: { code: 'PCL_ERR_API_INVALID' } });
    expect((await api('DELETE', `/api/v1/allow/workspaces/${ws}`)).status).toBe(200);
    expect((await api('GET', '/api/v1/allow')).body).toMatchObject({ presets: ['azure-public'], workspaces: [] });
    expectOperatorTextKept();
  });

  it('relay: the password is accepted but never returned; a PUT without it keeps it; DELETE removes the relay', async () => {
    const put = await api('PUT', '/api/v1/relay', {
      proxies: [{ url: 'http://127.0.0.1:3128', username: 'bob', password: 'relay-secret-1' }],
      bypass: ['*.corp.example'],
    });
    expect(put.status).toBe(200);
    expect(JSON.stringify(put.body)).not.toContain('relay-secret-1');
    const get = await api('GET', '/api/v1/relay');
    expect(get.body).toEqual({
      configured: true,
      proxies: [{ url: 'http://127.0.0.1:3128', username: 'bob', password: { source: 'inline' } }],
      bypass: ['*.corp.example'],
      backoffMs: 30000,
      connectMs: 10000,
    });
    expect(JSON.stringify((await api('GET', '/api/v1/config')).body)).not.toContain('relay-secret-1');
    // Read, change the bypass, write back: the password stays.
    const again = await api('PUT', '/api/v1/relay', { proxies: [{ url: 'http://127.0.0.1:3128', username: 'bob' }], bypass: [] });
    expect(again.body).toMatchObject({ message: expect.stringContaining('password kept') });
    expect(fileText(gw)).toContain('relay-secret-1');
    const env = await api('PUT', '/api/v1/relay', { proxies: [{ url: 'http://127.0.0.1:3128', username: 'bob', passwordEnv: 'RELAY_PASSWORD' }] });
    expect(env.status).toBe(200);
    expect((await api('GET', '/api/v1/relay')).body).toMatchObject({ proxies: [{ password: { source: 'env', env: 'RELAY_PASSWORD' } }] });
    expect(fileText(gw)).not.toContain('relay-secret-1');
    expect((await api('PUT', '/api/v1/relay', { proxies: [{ url: 'https://no-tls-relays:1' }] })).body).toMatchObject({
      error: { code: 'PCL_ERR_API_INVALID' },
    });
    expect((await api('DELETE', '/api/v1/relay')).status).toBe(200);
    expect((await api('GET', '/api/v1/relay')).body).toEqual({ configured: false, proxies: [], bypass: [] });
    expectOperatorTextKept();
  });

  it('clients: certificate subjects and thumbprints round-trip (thumbprints normalised, subjects matched case-insensitively)', async () => {
    const subject = 'CN=4f0c7d1e-8a3b-4c5d-9e6f-0a1b2c3d4e5f, CN=agent-1, OU=Microsoft Monitoring Agent, O=Microsoft';
    const thumb = 'ab'.repeat(32);
    expect((await api('POST', '/api/v1/clients/certificates', { subject, thumbprintSha256: thumb })).status).toBe(200);
    const listed = (await api('GET', '/api/v1/clients/certificates')).body;
    expect(listed).toEqual({ subjects: [subject], thumbprintsSha256: [Array(32).fill('AB').join(':')] });
    expect((await api('POST', '/api/v1/clients/certificates', { thumbprintSha256: 'xyz' })).status).toBe(400);
    expect((await api('POST', '/api/v1/clients/certificates', {})).status).toBe(400);
    const q = new URLSearchParams({ subject: subject.toLowerCase() }).toString();
    expect((await api('DELETE', `/api/v1/clients/certificates?${q}`)).status).toBe(200);
    expect((await api('DELETE', `/api/v1/clients/certificates?thumbprintSha256=${thumb}`)).status).toBe(200);
    expect((await api('GET', '/api/v1/clients/certificates')).body).toEqual({ subjects: [], thumbprintsSha256: [] });
    expectOperatorTextKept();
  });

  it('concurrent changes are serialised: ten adds at once all land', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `c${i}.example.com`);
    const answers = await Promise.all(names.map((h) => api('POST', '/api/v1/allow/rules', { name: 'many', hosts: [h] })));
    expect(answers.map((a) => a.status)).toEqual(names.map(() => 200));
    expect(((await api('GET', '/api/v1/allow/rules/many')).body.hosts as string[]).sort()).toEqual(names);
    expect((await api('DELETE', '/api/v1/allow/rules/many')).status).toBe(200);
    expectOperatorTextKept();
  });
});

describe('a file broken by hand', () => {
  it('is refused on reload (API and SIGHUP) with an event-401 line, the running configuration stays, and API changes are refused without writing', async () => {
    const good = fileText(gw);
    const broken = good.replace(/idleMs: \d+/, 'idleMs: -5');
    writeFileSync(gw.configFile, broken);
    const since = gw.logs.length;
    const reload = await api('POST', '/api/v1/reload');
    expect(reload.status).toBe(422);
    expect(reload.body).toMatchObject({ ok: false, issues: [{ path: 'proxy.timeouts.idleMs' }] });
    const line = await gw.waitForLog((r) => r.event === 401, 5_000, since);
    expect(line).toMatchObject({ msg: 'reload refused: keeping the running configuration', issues: [{ path: 'proxy.timeouts.idleMs' }] });
    const sinceHup = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((r) => r.event === 401, 5_000, sinceHup);
    expect((await api('GET', '/api/v1/config/proxy.timeouts.idleMs')).body).toMatchObject({ value: 120000 });
    // The old rules still decide.
    const t = await openTunnel(gw.port, `echo.example.com:${echo.port}`);
    expect(t.status).toBe(200);
    t.socket.destroy();

    const change = await api('POST', '/api/v1/allow/rules', { hosts: ['b.example.com'] });
    expect(change.status).toBe(400);
    expect(change.body).toMatchObject({ error: { code: 'PCL_ERR_API_INVALID' }, issues: [{ path: 'proxy.timeouts.idleMs' }] });
    expect(fileText(gw)).toBe(broken);
    writeFileSync(gw.configFile, good);
  });
});

describe('no token configured', () => {
  it('the API is off: 404 PCL_ERR_API_DISABLED for reads and changes, logged with event 204; the file is untouched', async () => {
    const echo2 = await startTcpEcho();
    const off = await startWithCommentedFile(echo2.port, { token: null });
    try {
      const call = apiClient(off.adminPort, TOKEN);
      for (const [method, path, body] of [
        ['GET', '/api/v1/config', undefined],
        ['POST', '/api/v1/allow/rules', { hosts: ['x.example.com'] }],
      ] as const) {
        const r = await call(method, path, body);
        expect(r.status).toBe(404);
        expect(r.body).toMatchObject({ error: { code: 'PCL_ERR_API_DISABLED' } });
      }
      await off.waitForLog((r) => r.event === 204 && r.code === 'PCL_ERR_API_DISABLED');
      expect(fileText(off)).toBe(commentedConfig(echo2.port, { token: null }));
    } finally {
      await off.stop('SIGKILL');
      await echo2.close();
    }
  });
});

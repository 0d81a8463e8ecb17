import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';

/** The admin token kept outside the config file, on a real gateway process: the API takes it, the logs never show it. */
const TOKEN = 'token-from-outside-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'pcl-secrets-'));
let gw: GatewayProcess | undefined;
afterEach(async () => {
  await gw?.stop('SIGKILL');
  gw = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function status(adminPort: number | undefined, token: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

it.each([
  ['admin.tokenFile', (): Record<string, unknown> => ({ tokenFile: join(dir, 'admin.token') }), {}],
  ['admin.tokenEnv', (): Record<string, unknown> => ({ tokenEnv: 'PORTCULLIS_TEST_ADMIN_TOKEN' }), { PORTCULLIS_TEST_ADMIN_TOKEN: TOKEN }],
])('%s: the management API takes the token, refuses another, and no log line holds it', async (_key, admin, env) => {
  writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
  gw = await startGateway({ proxy: { workers: 1 }, admin: { listen: '127.0.0.1:0', ...admin() }, allow: { presets: [] } }, { env });
  expect(await status(gw.adminPort, TOKEN)).toBe(200);
  expect(await status(gw.adminPort, 'not-the-token-0123456789')).toBe(401);
  expect(JSON.stringify(gw.logs)).not.toContain(TOKEN);
});

it('a token file that cannot be read stops the start (event 401) with an issue naming the key and the file (PCL_ERR_SECRET_FILE)', async () => {
  const missing = join(dir, 'missing.token');
  const err = await startGateway({ admin: { listen: '127.0.0.1:0', tokenFile: missing }, allow: { presets: [] } }).then(
    () => null,
    (e: unknown) => String(e),
  );
  expect(err).toContain('"event":401');
  expect(err).toContain(`{"path":"admin.tokenFile","line":3,"column":14,"message":"cannot read ${missing} (ENOENT)","code":"PCL_ERR_SECRET_FILE"}`);
});

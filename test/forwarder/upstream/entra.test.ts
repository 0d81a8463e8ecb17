/** The gateway's Entra token provider against the emulator's token endpoint (real @azure/identity, no mocks). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EntraTokenProvider, PCL_ERR_UPSTREAM_TOKEN, type EntraCredentialConfig, type TokenFailureEvent } from '../../../src/forwarder/upstream/entra.js';
import { testCA } from '../../helpers/tls.js';
import { emulatorAgent } from '../../emulator/clients.js';
import { AzureMonitorEmulator } from '../../emulator/emulator.js';

const TENANT = '0b9c1f7e-0000-4000-8000-000000000001';
const APP = 'a0000000-0000-4000-8000-00000000000a';
const CERT_APP = 'c0000000-0000-4000-8000-00000000000c';
const SHORT_APP = 'd0000000-0000-4000-8000-00000000000d';
const SECRET = 'never-log-this-secret-7c1d';

let emu: AzureMonitorEmulator;
let dir: string;
let secretFile: string;
let certFile: string;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  dir = mkdtempSync(join(tmpdir(), 'portcullis-entra-'));
  secretFile = join(dir, 'secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  const cert = await (await testCA()).issueClient({ commonNames: ['portcullis-gateway'] });
  certFile = join(dir, 'app.pem');
  writeFileSync(certFile, `${cert.keyPem}\n${cert.certPem}`);
  emu.addApp({ tenantId: TENANT, clientId: APP, secrets: [SECRET, 'rotated-secret'] });
  emu.addApp({ tenantId: TENANT, clientId: CERT_APP, certificatesPem: [cert.certPem] });
  // Lifetime shorter than the refresh margin below: always due for refresh.
  emu.addApp({ tenantId: TENANT, clientId: SHORT_APP, secrets: [SECRET], tokenLifetimeSec: 120 });
});
afterAll(async () => {
  await emu.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => emu.reset());

function provider(credential: EntraCredentialConfig, extra: Partial<ConstructorParameters<typeof EntraTokenProvider>[0]> = {}): EntraTokenProvider {
  // The injected agent stands in for the gateway's vetted connection: trusts the test CA, dials 127.0.0.1.
  return new EntraTokenProvider({ credential, authorityHost: emu.authorityHost, agent: emulatorAgent({ caPem: emu.caPem }), ...extra });
}

const secretCred = (clientId = APP): EntraCredentialConfig => ({ type: 'clientSecret', tenantId: TENANT, clientId, secretFile });

describe('EntraTokenProvider', () => {
  it('gets a token the ingestion API accepts (audience monitor), caches it, and concurrent callers share one request', async () => {
    const p = provider(secretCred());
    const tokens = await Promise.all(Array.from({ length: 10 }, () => p.getToken()));
    expect(new Set(tokens).size).toBe(1);
    expect(emu.entra.validateBearer(`Bearer ${tokens[0] ?? ''}`)).toMatchObject({ ok: true, clientId: APP, tenantId: TENANT });
    expect(await p.getToken()).toBe(tokens[0]);
    expect(emu.tokensIssued(APP)).toBe(1);
    expect(p.stats()).toMatchObject({ refreshes: 1, failures: 0 });
    expect(p.stats().expiresOnTimestamp).toBeGreaterThan(Date.now());
  });

  it('takes the client secret from an environment variable (secretEnv) as well as from a file', async () => {
    process.env.PCL_TEST_ENTRA_SECRET = SECRET;
    try {
      const p = provider({ type: 'clientSecret', tenantId: TENANT, clientId: APP, secretEnv: 'PCL_TEST_ENTRA_SECRET' });
      expect(emu.entra.validateBearer(`Bearer ${await p.getToken()}`)).toMatchObject({ ok: true, clientId: APP });
    } finally {
      delete process.env.PCL_TEST_ENTRA_SECRET;
    }
  });

  it('refreshes before expiry: a token inside the refresh margin is replaced on the next call', async () => {
    const refreshed: number[] = [];
    const p = provider(secretCred(SHORT_APP), { refreshMarginMs: 5 * 60 * 1000, onRefresh: (e) => refreshed.push(e.expiresOnTimestamp) });
    const a = await p.getToken();
    const b = await p.getToken();
    expect(a).not.toBe(b);
    expect(emu.tokensIssued(SHORT_APP)).toBe(2);
    expect(refreshed).toHaveLength(2);
  });

  it('forceRefresh() after upstream 401 gets a new token that is accepted again', async () => {
    const p = provider(secretCred());
    const first = await p.getToken();
    emu.expireTokens();
    expect(emu.entra.validateBearer(`Bearer ${first}`)).toMatchObject({ ok: false, code: 'ExpiredAuthenticationToken' });
    const [second, third] = await Promise.all([p.forceRefresh(), p.forceRefresh()]);
    expect(second).toBe(third);
    expect(second).not.toBe(first);
    expect(emu.entra.validateBearer(`Bearer ${second ?? ''}`)).toMatchObject({ ok: true });
    expect(emu.tokensIssued(APP)).toBe(2);
  });

  it('client certificate: the assertion is signed with the key in certificateFile', async () => {
    const p = provider({ type: 'clientCertificate', tenantId: TENANT, clientId: CERT_APP, certificateFile: certFile });
    expect(emu.entra.validateBearer(`Bearer ${await p.getToken()}`)).toMatchObject({ ok: true, clientId: CERT_APP });
  });

  it('picks up a rotated secret file on the next refresh', async () => {
    const rotating = join(dir, 'rotating');
    writeFileSync(rotating, SECRET);
    const p = provider({ type: 'clientSecret', tenantId: TENANT, clientId: APP, secretFile: rotating });
    await p.getToken();
    writeFileSync(rotating, 'rotated-secret');
    await p.forceRefresh();
    writeFileSync(rotating, 'revoked-secret');
    await expect(p.forceRefresh()).rejects.toMatchObject({ code: PCL_ERR_UPSTREAM_TOKEN });
  });

  it('a wrong secret fails with PCL_ERR_UPSTREAM_TOKEN, counts a failure, calls the hook, and never shows the secret', async () => {
    const wrong = join(dir, 'wrong');
    writeFileSync(wrong, 'wrong-secret-value-4242');
    const failures: TokenFailureEvent[] = [];
    const p = provider({ type: 'clientSecret', tenantId: TENANT, clientId: APP, secretFile: wrong }, { onFailure: (e) => failures.push(e) });
    const err: unknown = await p.getToken().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: PCL_ERR_UPSTREAM_TOKEN });
    expect(String((err as Error).message)).toMatch(/AADSTS7000215|invalid_client/);
    expect(String((err as Error).message)).not.toContain('wrong-secret-value-4242');
    expect(failures).toHaveLength(1);
    expect(p.stats()).toMatchObject({ refreshes: 0, failures: 1 });
  });

  it('a missing secret file is a clear error naming the key, not a crash', async () => {
    const p = provider({ type: 'clientSecret', tenantId: TENANT, clientId: APP, secretFile: join(dir, 'absent') });
    await expect(p.getToken()).rejects.toThrow(/cannot read secretFile .*absent: ENOENT/);
  });

  it('keeps serving the cached token while still valid when an early refresh fails (token endpoint down)', async () => {
    const p = provider(secretCred(SHORT_APP), { refreshMarginMs: 5 * 60 * 1000 });
    const first = await p.getToken();
    emu.faults.add({ api: 'token', action: { kind: 'status', status: 503 }, times: Number.POSITIVE_INFINITY });
    expect(await p.getToken()).toBe(first);
    expect(p.stats().failures).toBe(1);
    emu.faults.clear();
    expect(await p.getToken()).not.toBe(first);
  });

  it('caFile: with no injected agent, trusts the public roots plus the extra CA (and fails without it)', async () => {
    const authorityHost = `https://localhost:${emu.port}`;
    const trusted = new EntraTokenProvider({ credential: secretCred(), authorityHost, caFile: emu.caFile });
    expect(emu.entra.validateBearer(`Bearer ${await trusted.getToken()}`)).toMatchObject({ ok: true });
    trusted.close();
    const untrusted = new EntraTokenProvider({ credential: secretCred(), authorityHost });
    await expect(untrusted.getToken()).rejects.toMatchObject({ code: PCL_ERR_UPSTREAM_TOKEN });
  });
});

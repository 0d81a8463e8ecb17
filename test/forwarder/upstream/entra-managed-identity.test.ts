/**
 * Managed identity through @azure/identity's ManagedIdentityCredential, pointed at the emulator's
 * App Service style endpoint by the documented env vars (IDENTITY_ENDPOINT + IDENTITY_HEADER).
 * Own file: the env vars and MSAL's managed-identity source detection are process-wide.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntraTokenProvider } from '../../../src/forwarder/upstream/entra.js';
import { AzureMonitorEmulator } from '../../emulator/emulator.js';

const TENANT = '0b9c1f7e-0000-4000-8000-0000000000f1';
const MI = 'e0000000-0000-4000-8000-0000000000e1';
let emu: AzureMonitorEmulator;
const saved = { IDENTITY_ENDPOINT: process.env['IDENTITY_ENDPOINT'], IDENTITY_HEADER: process.env['IDENTITY_HEADER'] };

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  emu.addManagedIdentity({ clientId: MI, tenantId: TENANT });
  Object.assign(process.env, emu.managedIdentityEnv());
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await emu.close();
});

describe('EntraTokenProvider with a managed identity', () => {
  it('gets a monitor token from the local identity endpoint and caches it', async () => {
    const p = new EntraTokenProvider({ credential: { type: 'managedIdentity' } });
    const token = await p.getToken();
    expect(emu.entra.validateBearer(`Bearer ${token}`)).toMatchObject({ ok: true, clientId: MI, tenantId: TENANT });
    expect(await p.getToken()).toBe(token);
    expect(emu.tokensIssued(MI)).toBe(1);
    expect(emu.requests({ api: 'managedIdentity', status: 200 })).toHaveLength(1);
  });
});

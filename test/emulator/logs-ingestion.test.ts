/**
 * Emulator self-test, Logs Ingestion API, driven by the official clients:
 * @azure/monitor-ingestion LogsIngestionClient + @azure/identity credentials whose authorityHost is
 * the emulator, trusting the test CA through an https.Agent (no NODE_TLS_REJECT_UNAUTHORIZED).
 */
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { ClientCertificateCredential, ClientSecretCredential } from '@azure/identity';
import { LogsIngestionClient, isAggregateLogsUploadError } from '@azure/monitor-ingestion';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testCA } from '../helpers/tls.js';
import { emulatorAgent, sdkOptions, send } from './clients.js';
import { AzureMonitorEmulator } from './emulator.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const CERT_CLIENT = '66666666-2222-3333-4444-555555555555';
const SECRET = 'emulator-test-secret';
const DCR = 'dcr-00000000000000000000000000000001';
const STREAM = 'Custom-App_CL';

let emu: AzureMonitorEmulator;
let certPem: string;
let keyPem: string;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  const ca = await testCA();
  const issued = await ca.issueClient({ commonNames: ['portcullis-test-app'] });
  certPem = issued.certPem;
  keyPem = issued.keyPem;
  emu.addApp({ tenantId: TENANT, clientId: CLIENT, secrets: [SECRET] });
  emu.addApp({ tenantId: TENANT, clientId: CERT_CLIENT, certificatesPem: [certPem] });
  emu.addDcr({ immutableId: DCR, streams: [STREAM], allowedClientIds: [CLIENT, CERT_CLIENT] });
});
afterAll(async () => {
  await emu.close();
});
beforeEach(() => emu.reset());

function makeClient(
  credential: ClientSecretCredential | ClientCertificateCredential,
  retry: { maxRetries?: number; retryDelayInMs?: number } = {},
): LogsIngestionClient {
  return new LogsIngestionClient(emu.logsIngestionEndpoint(), credential, sdkOptions(emu, retry));
}

function secretCredential(secret = SECRET): ClientSecretCredential {
  return new ClientSecretCredential(TENANT, CLIENT, secret, sdkOptions({ caPem: emu.caPem, authorityHost: emu.authorityHost }));
}

describe('Logs Ingestion API with the official SDK', () => {
  it('uploads records with a client-secret token; every record arrives as sent, gzip-compressed', async () => {
    const records = Array.from({ length: 500 }, (_, i) => ({ TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: i, Msg: 'x'.repeat(100) }));
    const client = makeClient(secretCredential());
    await client.upload(DCR, STREAM, records);
    const got = emu.records({ target: DCR, stream: STREAM });
    expect(got.map((r) => r.record)).toEqual(records);
    expect(got.every((r) => r.gzip)).toBe(true);
    expect(emu.tokensIssued(CLIENT)).toBe(1);
    expect(emu.requests({ api: 'logsIngestion', status: 204 }).length).toBeGreaterThanOrEqual(1);
  });

  it('uploads with a client-certificate credential (client_assertion verified against the registered cert)', async () => {
    const credential = new ClientCertificateCredential(
      TENANT,
      CERT_CLIENT,
      { certificate: `${keyPem}\n${certPem}` },
      sdkOptions({ caPem: emu.caPem, authorityHost: emu.authorityHost }),
    );
    const client = makeClient(credential);
    await client.upload(DCR, STREAM, [{ Id: 'cert-1' }]);
    expect(emu.records({ target: DCR }).map((r) => r.record)).toEqual([{ Id: 'cert-1' }]);
    expect(emu.tokensIssued(CERT_CLIENT)).toBe(1);
  });

  it('a wrong client secret fails at the token endpoint (invalid_client) and nothing is ingested', async () => {
    const client = makeClient(secretCredential('wrong'));
    const err: unknown = await client.upload(DCR, STREAM, [{ Id: 'no' }]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isAggregateLogsUploadError(err)).toBe(true);
    if (isAggregateLogsUploadError(err)) expect(String(err.errors[0]?.cause)).toMatch(/AADSTS7000215|invalid_client/);
    expect(emu.requests({ api: 'token', status: 401 }).length).toBeGreaterThanOrEqual(1);
    expect(emu.requests({ api: 'logsIngestion' })).toHaveLength(0);
    expect(emu.records()).toHaveLength(0);
  });

  it('429 with Retry-After: the SDK waits and retries, and the records arrive once', async () => {
    const fault = emu.faults.add({ api: 'logsIngestion', target: DCR, action: { kind: 'status', status: 429, retryAfterSec: 1 }, times: 2 });
    const client = makeClient(secretCredential());
    await client.upload(DCR, STREAM, [{ Id: 'after-429' }]);
    expect(fault.hits()).toBe(2);
    const ok = emu.requests({ api: 'logsIngestion', status: 204 });
    expect(ok).toHaveLength(1);
    const [first, second] = fault.hitTimes();
    // Retry-After: 1 honoured: each retry came at least ~1 s after the refusal before it.
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(900);
    expect((ok[0]?.at ?? 0) - (second ?? 0)).toBeGreaterThanOrEqual(900);
    expect(emu.records().map((r) => r.record)).toEqual([{ Id: 'after-429' }]);
  });

  it('the per-DCR request rate limit answers 429 with Retry-After in the real error shape', async () => {
    const dcr = 'dcr-rate-limited';
    emu.addDcr({ immutableId: dcr, streams: [STREAM], requestsPerMinute: 3 });
    const token = emu.issueToken({ tenantId: TENANT, clientId: CLIENT });
    const agent = emulatorAgent({ caPem: emu.caPem });
    const url = `${emu.logsIngestionEndpoint()}/dataCollectionRules/${dcr}/streams/${STREAM}?api-version=2023-01-01`;
    const post = (): ReturnType<typeof send> =>
      send(url, { agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '[{"a":1}]' });
    for (let i = 0; i < 3; i++) expect((await post()).status).toBe(204);
    const limited = await post();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json<{ error: { code: string } }>().error.code).toBe('TooManyRequests');
    agent.destroy();
  });

  it('refuses a bad token (401), a wrong audience (401), an unknown DCR (404), unknown stream (400), a non-array (400)', async () => {
    const agent = emulatorAgent({ caPem: emu.caPem });
    const url = (dcr: string, stream: string): string => `${emu.logsIngestionEndpoint()}/dataCollectionRules/${dcr}/streams/${stream}?api-version=2023-01-01`;
    const good = emu.issueToken({ tenantId: TENANT, clientId: CLIENT });
    const post = (u: string, token: string, body = '[{"a":1}]'): ReturnType<typeof send> =>
      send(u, { agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });

    const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const bad = await post(url(DCR, STREAM), forged);
    expect(bad.status).toBe(401);
    expect(bad.json<{ error: { code: string } }>().error.code).toBe('InvalidAuthenticationToken');

    const wrongAud = await post(url(DCR, STREAM), emu.issueToken({ tenantId: TENANT, clientId: CLIENT, resource: 'https://management.azure.com' }));
    expect(wrongAud.status).toBe(401);
    expect(wrongAud.json<{ error: { code: string } }>().error.code).toBe('InvalidAuthenticationTokenAudience');

    expect((await post(url('dcr-unknown', STREAM), good)).status).toBe(404);
    expect((await post(url(DCR, 'Custom-Nope_CL'), good)).status).toBe(400);
    const notArray = await post(url(DCR, STREAM), good, '{"a":1}');
    expect(notArray.status).toBe(400);
    expect(notArray.json<{ error: { code: string } }>().error).toMatchObject({ code: 'InvalidRequestBody' });

    const stranger = emu.issueToken({ tenantId: TENANT, clientId: 'not-allowed-app' });
    expect((await post(url(DCR, STREAM), stranger)).status).toBe(403);
    expect(emu.records()).toHaveLength(0);
    agent.destroy();
  });

  it('expired tokens answer 401; the SDK surfaces it (the gateway refreshes and retries)', async () => {
    const credential = secretCredential();
    const client = makeClient(credential);
    await client.upload(DCR, STREAM, [{ Id: 'before' }]);
    emu.expireTokens();
    const err: unknown = await client.upload(DCR, STREAM, [{ Id: 'after' }]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isAggregateLogsUploadError(err)).toBe(true);
    expect(emu.requests({ api: 'logsIngestion', status: 401 }).length).toBeGreaterThanOrEqual(1);
    expect(emu.records().map((r) => r.record)).toEqual([{ Id: 'before' }]);
  });

  it('enforces 1 MiB on the compressed AND the uncompressed body with the real 413 body', async () => {
    const agent = emulatorAgent({ caPem: emu.caPem });
    const token = emu.issueToken({ tenantId: TENANT, clientId: CLIENT });
    const url = `${emu.logsIngestionEndpoint()}/dataCollectionRules/${DCR}/streams/${STREAM}?api-version=2023-01-01`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    // Uncompressed just over the limit (compresses to a few KB): refused after inflating to the limit only.
    const big = JSON.stringify([{ Msg: 'a'.repeat(1_048_576) }]);
    const gz = await send(url, { agent, headers: { ...headers, 'content-encoding': 'gzip' }, body: gzipSync(big) });
    expect(gz.status).toBe(413);
    expect(gz.json<{ error: { code: string; message: string } }>().error.code).toBe('ContentLengthLimitExceeded');
    const plain = await send(url, { agent, headers, body: big });
    expect(plain.status).toBe(413);
    expect(plain.json<{ error: { code: string; message: string } }>().error.message).toMatch(/^Maximum allowed content length: 1048576 bytes/);
    // Exactly at the limit is fine.
    const fill = 1_048_576 - JSON.stringify([{ Msg: '' }]).length;
    const exact = JSON.stringify([{ Msg: 'b'.repeat(fill) }]);
    expect(Buffer.byteLength(exact)).toBe(1_048_576);
    expect((await send(url, { agent, headers, body: exact })).status).toBe(204);
    agent.destroy();
  });

  it('faults: 503 then reset then slow answer; the SDK retries through all of them', async () => {
    emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 503, retryAfterMs: 50 } });
    emu.faults.add({ api: 'logsIngestion', action: { kind: 'reset' } });
    emu.faults.add({ api: 'logsIngestion', action: { kind: 'delay', ms: 300 } });
    const client = makeClient(secretCredential(), { retryDelayInMs: 50 });
    await client.upload(DCR, STREAM, [{ Id: 'survivor' }]);
    const faults = emu.requests({ api: 'logsIngestion' }).map((r) => r.fault ?? r.status);
    expect(faults).toEqual(['status:503', 'reset', 'delay']);
    expect(emu.records().map((r) => r.record)).toEqual([{ Id: 'survivor' }]);
  });

  it('an outage window refuses everything until it ends, then the same client gets through', async () => {
    const outage = emu.faults.outage(1500, { api: 'logsIngestion', retryAfterSec: 1 });
    const client = makeClient(secretCredential(), { maxRetries: 5 });
    await client.upload(DCR, STREAM, [{ Id: 'after-outage' }]);
    expect(outage.hits()).toBeGreaterThanOrEqual(1);
    const ok = emu.requests({ api: 'logsIngestion', status: 204 });
    expect(ok).toHaveLength(1);
    expect((ok[0]?.at ?? 0) - (outage.hitTimes()[0] ?? 0)).toBeGreaterThanOrEqual(1400);
  });
});

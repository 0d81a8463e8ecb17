/**
 * Emulator self-test, HTTP Data Collector API: a SharedKey client (the gateway's signer,
 * src/forwarder/upstream/shared-key.ts, written from the documented algorithm) against the
 * emulator's independent verifier.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Agent } from 'node:https';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { signDataCollectorRequest } from '../../src/forwarder/upstream/shared-key.js';
import { emulatorAgent, postDataCollector, send } from './clients.js';
import { AzureMonitorEmulator } from './emulator.js';

const WS = '4a7b6c5d-1e2f-4a3b-8c9d-0e1f2a3b4c5d';
let emu: AzureMonitorEmulator;
let key: string;
let agent: Agent;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  key = emu.addWorkspace({ workspaceId: WS }).sharedKey;
  agent = emulatorAgent({ caPem: emu.caPem });
});
afterAll(async () => {
  agent.destroy();
  await emu.close();
});
beforeEach(() => emu.reset());

const post = (over: Partial<Parameters<typeof postDataCollector>[0]> = {}): ReturnType<typeof postDataCollector> =>
  postDataCollector({ endpoint: emu.dataCollectorEndpoint(WS), agent, workspaceId: WS, sharedKey: key, logType: 'FirewallX', body: '[{"a":1}]', ...over });

describe('HTTP Data Collector API', () => {
  it('accepts a correctly signed post (200) and records every record with Log-Type and time-generated-field', async () => {
    const records = Array.from({ length: 50 }, (_, i) => ({ Id: randomUUID(), Seq: i, When: new Date().toISOString() }));
    const res = await post({ body: JSON.stringify(records), timeGeneratedField: 'When' });
    expect(res.status).toBe(200);
    const got = emu.records({ api: 'dataCollector', target: WS, stream: 'FirewallX' });
    expect(got.map((r) => r.record)).toEqual(records);
    expect(got[0]?.timeGeneratedField).toBe('When');
  });

  it('a single JSON object is accepted as one record', async () => {
    expect((await post({ body: '{"one":1}' })).status).toBe(200);
    expect(emu.records().map((r) => r.record)).toEqual([{ one: 1 }]);
  });

  it('wrong key, wrong workspace in the header, stale date and tampered body: 403 InvalidAuthorization', async () => {
    const wrongKey = await post({ sharedKey: randomBytes(64).toString('base64') });
    expect(wrongKey.status).toBe(403);
    expect(wrongKey.json()).toMatchObject({ Error: 'InvalidAuthorization' });
    const stale = await post({ now: new Date(Date.now() - 60 * 60 * 1000) });
    expect(stale.status).toBe(403);
    const scheme = await post({ headers: { authorization: `Bearer x` } });
    expect(scheme.status).toBe(403);
    // Headers signed for one body, another body sent.
    const signed = signDataCollectorRequest({ workspaceId: WS, sharedKey: key, body: Buffer.from('[{"a":1}]'), logType: 'FirewallX' });
    const tampered = await send(`${emu.dataCollectorEndpoint(WS)}/api/logs?api-version=2016-04-01`, { agent, headers: signed, body: '[{"a":1,"b":2}]' });
    expect(tampered.status).toBe(403);
    expect((await send(`${emu.dataCollectorEndpoint(WS)}/api/logs?api-version=2016-04-01`, { agent, headers: signed, body: '[{"a":1}]' })).status).toBe(200);
    const other = '4a7b6c5d-0000-4a3b-8c9d-0e1f2a3b4c5d';
    emu.addWorkspace({ workspaceId: other, sharedKeys: [key] });
    const crossed = await postDataCollector({ endpoint: emu.dataCollectorEndpoint(WS), agent, workspaceId: other, sharedKey: key, logType: 'X', body: '[{}]' });
    expect(crossed.status).toBe(403);
    expect(emu.records()).toHaveLength(1);
  });

  it('the secondary key is valid too', async () => {
    const ws = '00000000-0000-4000-8000-0000000000b2';
    const { sharedKeys } = emu.addWorkspace({ workspaceId: ws, sharedKeys: [randomBytes(64).toString('base64'), randomBytes(64).toString('base64')] });
    const res = await postDataCollector({
      endpoint: emu.dataCollectorEndpoint(ws),
      agent,
      workspaceId: ws,
      sharedKey: sharedKeys[1] ?? '',
      logType: 'T',
      body: '[{}]',
    });
    expect(res.status).toBe(200);
  });

  it('documented 400 codes: InvalidLogType, InvalidDataFormat, MissingLogType, InvalidApiVersion', async () => {
    expect((await post({ logType: 'bad-type!' })).json()).toMatchObject({ Error: 'InvalidLogType' });
    expect((await post({ logType: 'x'.repeat(101) })).json()).toMatchObject({ Error: 'InvalidLogType' });
    const notJson = await post({ body: '[{"a":' });
    expect(notJson.status).toBe(400);
    expect(notJson.json()).toMatchObject({ Error: 'InvalidDataFormat' });
    expect((await post({ headers: { 'log-type': '' } })).json()).toMatchObject({ Error: 'MissingLogType' });
    expect(emu.records()).toHaveLength(0);
  });

  it('truncates field values over 32 KB instead of refusing', async () => {
    const res = await post({ body: JSON.stringify([{ Big: 'z'.repeat(40_000) }]) });
    expect(res.status).toBe(200);
    const rec = emu.records()[0]?.record as { Big: string };
    expect(rec.Big.length).toBe(32 * 1024);
  });

  it('faults apply per workspace / Log-Type: 503 with Retry-After, then success', async () => {
    emu.faults.add({ api: 'dataCollector', target: WS, stream: 'FirewallX', action: { kind: 'status', status: 503, retryAfterSec: 2 } });
    const refused = await post();
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('2');
    expect((await post()).status).toBe(200);
  });
});

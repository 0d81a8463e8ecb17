/**
 * The forwarder's upstream traffic goes through the relay proxy too (as the Log Analytics gateway
 * sends everything through its relay): uploads accepted by the gateway reach the emulator, and the
 * relay, a real Squid with Basic auth, shows the token request and the upload's CONNECTs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/system.js';
import { startSquid, type SquidRelay } from '../helpers/squid.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import { DCR_IN, DCR_UP, STREAM, WS_UP, realisticRecords, sdkClient, startFixture, waitForIds, type Fixture } from './fixture.js';

const squid = requireBinary('squid');

describe.skipIf(!squid)('forwarder upstream through a relay proxy', () => {
  let emu: AzureMonitorEmulator;
  let fx: Fixture;
  let relay: SquidRelay;

  beforeAll(async () => {
    emu = await AzureMonitorEmulator.start();
    // The relay resolves the emulator's names itself (its hosts_file); the gateway only checks them.
    const names = [emu.logsIngestionEndpoint(), emu.dataCollectorEndpoint(WS_UP), emu.authorityHost].map((u) => new URL(u).hostname);
    relay = await startSquid({ users: { fwd: 'fwd-relay-pass' }, hosts: Object.fromEntries(names.map((n) => [n, '127.0.0.1'])) });
    fx = await startFixture({
      emulator: emu,
      extra: () => ({ upstreamProxy: { proxies: [{ url: relay.url, username: 'fwd', password: 'fwd-relay-pass' }] } }),
    });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
    await relay?.stop();
    await emu?.close();
  });

  it('uploads are delivered, and the token request and the upload went through the relay', async () => {
    const records = realisticRecords(20, 0, 'via-relay');
    await sdkClient(fx).upload(DCR_IN, STREAM, records);
    const got = await waitForIds(fx.emu, { target: DCR_UP, stream: STREAM }, new Set(records.map((r) => r.RecordId)));
    expect(got.length).toBeGreaterThanOrEqual(records.length);
    const login = `${new URL(fx.emu.authorityHost).hostname}:${fx.emu.port}`;
    const dce = `${new URL(fx.emu.logsIngestionEndpoint()).hostname}:${fx.emu.port}`;
    // Squid logs a CONNECT when its tunnel ends: the token request's does once its connection closes.
    await fx.stop();
    expect(await relay.waitForAccess((l) => l.includes(`CONNECT ${dce}`))).toContain('fwd');
    expect(await relay.waitForAccess((l) => l.includes(`CONNECT ${login}`))).toContain('fwd');
  });
});

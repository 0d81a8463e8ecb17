/**
 * The emulator's benchmark mode (countOnly) over HTTPS: gzip bodies are inflated into one buffer it
 * keeps, and each request's records are counted from that request's bytes alone. A smaller body
 * after a larger one must not count the larger one's leftovers, and a bad body is still refused.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emulatorAgent, send } from './clients.js';
import { AzureMonitorEmulator } from './emulator.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const DCR = 'dcr-count-mode';
const STREAM = 'Custom-Count_CL';

let emu: AzureMonitorEmulator;
beforeAll(async () => {
  emu = await AzureMonitorEmulator.start({ countOnly: true });
  emu.addApp({ tenantId: TENANT, clientId: CLIENT, secrets: ['s'] });
  emu.addDcr({ immutableId: DCR, streams: [STREAM] });
});
afterAll(async () => {
  await emu.close();
});

it('counts each gzip body on its own, larger then smaller, and refuses what is not an array of objects', async () => {
  const agent = emulatorAgent({ caPem: emu.caPem });
  const token = emu.issueToken({ tenantId: TENANT, clientId: CLIENT });
  const url = `${emu.logsIngestionEndpoint()}/dataCollectionRules/${DCR}/streams/${STREAM}?api-version=2023-01-01`;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-encoding': 'gzip' };
  const body = (n: number): Buffer => gzipSync(JSON.stringify(Array.from({ length: n }, (_, i) => ({ Seq: i, Msg: 'm'.repeat(50) }))));
  const answers = [];
  for (const n of [5000, 3, 1200]) answers.push((await send(url, { agent, headers, body: body(n) })).status);
  // A valid array's prefix, cut short: after the bodies above, the kept buffer holds more array.
  const cut = gzipSync(JSON.stringify([{ Seq: 1 }, { Seq: 2 }]).slice(0, -1));
  const refused = await send(url, { agent, headers, body: cut });
  agent.destroy();
  expect(answers).toEqual([204, 204, 204]);
  expect(refused.status).toBe(400);
  expect(refused.json<{ error: { code: string } }>().error.code).toBe('InvalidRequestBody');
  expect(emu.requests({ api: 'logsIngestion', status: 204 }).map((r) => r.records)).toEqual([5000, 3, 1200]);
  // Count mode keeps no record.
  expect(emu.records()).toHaveLength(0);
});

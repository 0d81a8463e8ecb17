/**
 * A destination's own `ordered: false` overrides batch.ordered (true by default) for its streams:
 * batches of one stream fly at once, so one held request does not hold the rest back (what a
 * syslog destination over a slow link needs: docs/sentinel-forwarder.md#throughput). With the
 * setting removed, the stream is ordered again and the test fails (its first batch holds the rest).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { send } from '../emulator/clients.js';
import { API_KEY, DCR_UP, STREAM, ingestUrl, realisticRecords, startFixture, waitForIds, type Fixture } from './fixture.js';

let fx: Fixture;
const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };

beforeAll(async () => {
  // Small batches so a few dozen uploads make many of them; one upstream stream.
  fx = await startFixture({ forwarder: { batch: { maxBytes: 32_768, maxAgeMs: 50 } }, destinations: { 'dcr-main': { ordered: false } } });
}, 60_000);
afterAll(async () => {
  await fx?.close();
});

it('an unordered destination keeps sending while one of its batches is held upstream', async () => {
  const run = 'unordered-dest';
  const held = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'delay', ms: 3_000 }, times: 1 });
  for (let i = 0; i < 40; i++) {
    const status = (await send(ingestUrl(fx), { agent: fx.agent, headers, body: JSON.stringify(realisticRecords(20, i * 20, run)) })).status;
    expect(status).toBe(204);
  }
  const ids = new Set(Array.from({ length: 800 }, (_, n) => `${run}-${n}`));
  await waitForIds(fx.emu, { target: DCR_UP, stream: STREAM }, ids, 30_000);
  expect(held.hits()).toBe(1);
  const heldSeq = fx.emu.requests({ target: DCR_UP }).find((r) => r.fault === 'delay')?.seq;
  // Requests that started after the held one were answered before it: they were not waiting.
  const log = fx.emu.requests({ target: DCR_UP, status: 204 });
  const heldAt = log.findIndex((r) => r.seq === heldSeq);
  const overtook = log.slice(0, heldAt).filter((r) => (r.seq ?? 0) > (heldSeq ?? 0));
  expect(heldAt).toBeGreaterThan(0);
  expect(overtook.length).toBeGreaterThan(0);
}, 60_000);

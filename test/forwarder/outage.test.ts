/**
 * Acceptance (issue 9): an upstream outage. Both upstream APIs refuse with 503 + Retry-After for
 * 30 s, then recover. Clients keep uploading all along and every upload gets its success status
 * (the spool absorbs them); the spool grows during the outage and drains after it; nothing
 * acknowledged is lost; and the emulator's own timestamps of the refused requests show Retry-After
 * honoured: consecutive attempts at a destination are at least Retry-After apart.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { emulatorAgent, postDataCollector, send } from '../emulator/clients.js';
import { API_KEY, DCR_UP, STREAM, WS_IN, WS_UP, ingestUrl, realisticRecords, startFixture, waitForIds, type AgentRecord, type Fixture } from './fixture.js';

const OUTAGE_MS = 30_000;
const RETRY_AFTER_S = 3;
/** Timer and clock granularity between the gateway's wait and the emulator's Date.now(). */
const TOLERANCE_MS = 50;
let fx: Fixture;

beforeAll(async () => {
  fx = await startFixture();
});
afterAll(async () => {
  await fx?.close();
});

async function gauge(name: string): Promise<number> {
  const text = await fx.registry.getSingleMetricAsString(name);
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function gaps(times: number[]): number[] {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted.slice(1).map((t, i) => t - (sorted[i] ?? t));
}

it(`a ${OUTAGE_MS / 1000} s upstream outage: uploads keep succeeding, the spool grows and drains, Retry-After is honoured, nothing is lost`, async () => {
  const liHeaders = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
  // Warm up both destinations (token, connections), so the outage is the only thing in the way.
  const warm = realisticRecords(2, 0, 'outage-warm');
  expect((await send(ingestUrl(fx), { agent: fx.agent, headers: liHeaders, body: JSON.stringify([warm[0]]) })).status).toBe(204);
  expect(
    (
      await postDataCollector({
        endpoint: fx.url,
        agent: fx.agent,
        workspaceId: WS_IN,
        sharedKey: fx.inboundKey,
        logType: 'Raw',
        body: JSON.stringify([warm[1]]),
      })
    ).status,
  ).toBe(200);
  await fx.emu.waitForRecords({ target: DCR_UP }, 1);
  await fx.emu.waitForRecords({ target: WS_UP }, 1);

  const outageLi = fx.emu.faults.outage(OUTAGE_MS, { api: 'logsIngestion', retryAfterSec: RETRY_AFTER_S });
  const outageDc = fx.emu.faults.outage(OUTAGE_MS, { api: 'dataCollector', retryAfterSec: RETRY_AFTER_S });
  const outageEnds = Date.now() + OUTAGE_MS;

  const ackedLi: AgentRecord[] = [];
  const ackedDc: AgentRecord[] = [];
  const failed: string[] = [];
  const samples: Array<{ at: number; pendingBytes: number }> = [];
  let stop = false;
  // Three Logs Ingestion clients and one Data Collector client (re-signed route), 10 records every
  // 100 ms each: a few MB during the outage, more than one full batch per destination.
  const clients = Array.from({ length: 4 }, async (_, c) => {
    const agent = emulatorAgent({ caPem: fx.caPem, loopback: false, keepAlive: true });
    let n = 0;
    try {
      while (!stop) {
        const recs = realisticRecords(10, n, `outage-${c}`);
        n += recs.length;
        const dc = c === 3;
        const a = dc
          ? await postDataCollector({ endpoint: fx.url, agent, workspaceId: WS_IN, sharedKey: fx.inboundKey, logType: 'Raw', body: JSON.stringify(recs) })
          : await send(ingestUrl(fx), { agent, headers: liHeaders, body: JSON.stringify(recs) });
        if (a.status === (dc ? 200 : 204)) (dc ? ackedDc : ackedLi).push(...recs);
        else failed.push(`${a.status} ${a.body.toString('utf8').slice(0, 100)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      agent.destroy();
    }
  });
  // Observe the spool the way an operator does: its gauge, twice a second, until the outage is over.
  while (Date.now() < outageEnds + 1_000) {
    samples.push({ at: Date.now(), pendingBytes: await gauge('portcullis_forwarder_spool_pending_bytes') });
    await new Promise((r) => setTimeout(r, 500));
  }
  stop = true;
  await Promise.all(clients);

  expect(failed).toEqual([]);
  expect(ackedLi.length).toBeGreaterThan(1_000);
  expect(ackedDc.length).toBeGreaterThan(100);
  const during = samples.filter((s) => s.at < outageEnds).map((s) => s.pendingBytes);
  const peak = Math.max(...during);
  console.log(`outage: ${ackedLi.length + ackedDc.length} records acknowledged; spool pending bytes ${during[0]} -> peak ${peak} during the outage`);
  expect(peak).toBeGreaterThan(1_000_000);
  expect(during[during.length - 1] ?? 0).toBeGreaterThan((during[0] ?? 0) + 1_000_000);

  // Recovered: every acknowledged record arrives, and the spool drains.
  const gotLi = await waitForIds(fx.emu, { target: DCR_UP, stream: STREAM }, new Set(ackedLi.map((r) => r.RecordId)), 60_000);
  const gotDc = await waitForIds(fx.emu, { api: 'dataCollector', target: WS_UP }, new Set(ackedDc.map((r) => r.RecordId)), 60_000);
  const liById = new Map(gotLi.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  const dcById = new Map(gotDc.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  expect(ackedLi.filter((r) => JSON.stringify(liById.get(r.RecordId)) !== JSON.stringify(r)).length).toBe(0);
  expect(ackedDc.filter((r) => JSON.stringify(dcById.get(r.RecordId)) !== JSON.stringify(r)).length).toBe(0);
  const drainDeadline = Date.now() + 15_000;
  while ((await gauge('portcullis_forwarder_spool_pending_entries')) > 0 && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 100));
  expect(await gauge('portcullis_forwarder_spool_pending_entries')).toBe(0);
  expect(await gauge('portcullis_forwarder_spool_pending_bytes')).toBe(0);

  // Retry-After honoured: the refused attempts at each destination, as the emulator timed them.
  for (const [name, fault] of [
    ['logsIngestion', outageLi],
    ['dataCollector', outageDc],
  ] as const) {
    const times = fault.hitTimes();
    const spacing = gaps(times);
    console.log(`outage: ${name} refused ${times.length} attempts; gaps ${JSON.stringify(spacing)}`);
    expect(times.length).toBeGreaterThanOrEqual(2);
    expect(spacing.filter((g) => g < RETRY_AFTER_S * 1000 - TOLERANCE_MS)).toEqual([]);
  }
  // And the first success after the outage came no earlier than Retry-After after the last refusal.
  const lastRefusal = Math.max(...outageLi.hitTimes());
  const firstOk = fx.emu.requests({ api: 'logsIngestion', status: 204 }).find((r) => r.at > lastRefusal);
  expect((firstOk?.at ?? 0) - lastRefusal).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000 - TOLERANCE_MS);
}, 100_000);

/**
 * Acceptance (issue 9): fleets. 1,000 simulated agents (each its own keep-alive connection) post a
 * few small records about every second; a fleet of Data Collector API clients signing with
 * SharedKey does the same on a translated route (to Logs Ingestion) and a re-signed one (to the
 * Data Collector API). The gateway turns them into at least 20 times fewer upstream requests, every
 * record arrives, and each sender's records arrive in the order it sent them.
 */
import type { Agent as HttpsAgent } from 'node:https';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { emulatorAgent, postDataCollector, send, type HttpAnswer } from '../emulator/clients.js';
import { AzureMonitorEmulator, type AcceptedRecord } from '../emulator/emulator.js';
import { API_KEY, DCR_UP, FW_STREAM, STREAM, WS_IN, WS_UP, ingestUrl, prepareForwarder, realisticRecords, waitForIds, type AgentRecord } from './fixture.js';

// The real `portcullis start` process (its own core), the fleet and the emulator in this one.
// Default settings: batch.ordered keeps one batch of a stream in flight, so per-agent order holds
// across batches (with batch.ordered: false and maxConcurrency 8, 584 of the 1,000 agents saw two
// full batches land in the other order).
let gw: GatewayProcess | undefined;
const fx = { url: '', caPem: '', inboundKey: '', emu: undefined as unknown as AzureMonitorEmulator };

beforeAll(async () => {
  fx.emu = await AzureMonitorEmulator.start();
  const setup = await prepareForwarder(fx.emu, { forwarder: { pool: { threads: 1 } } });
  fx.caPem = setup.caPem;
  fx.inboundKey = setup.inboundKey;
  gw = await startGateway({ ...setup.config, log: { level: 'info', access: false } });
  const listening = await gw.waitForLog((r) => r.msg === 'forwarder listening', 15_000);
  fx.url = `https://127.0.0.1:${(listening.listen as { port: number }).port}`;
});
afterAll(async () => {
  if (gw) expect(await gw.stop('SIGTERM')).toBe(0);
  await fx.emu?.close();
});
beforeEach(() => fx.emu.reset());

/** Record id `<run>-<sender>-<n>` → [sender, n]. */
function senderAndSeq(id: string): [number, number] {
  const parts = id.split('-');
  return [Number(parts[parts.length - 2]), Number(parts[parts.length - 1])];
}

/** Every sender's records, in the emulator's arrival order, are in the order it sent them. */
function outOfOrderSenders(got: AcceptedRecord[]): number[] {
  const last = new Map<number, number>();
  const bad = new Set<number>();
  for (const r of got) {
    const [sender, n] = senderAndSeq((r.record as { RecordId: string }).RecordId);
    if ((last.get(sender) ?? -1) > n) bad.add(sender);
    last.set(sender, n);
  }
  return [...bad];
}

/**
 * `senders` clients, each with its own keep-alive connection, start at a random moment of the first
 * second and post `rounds` uploads of 1-5 records about every second. Returns what was acknowledged.
 */
async function runFleet(
  senders: number,
  rounds: number,
  runId: string,
  post: (agent: HttpsAgent, sender: number, recs: AgentRecord[]) => Promise<HttpAnswer>,
  okStatus: number,
): Promise<{ sent: AgentRecord[]; uploads: number; refused: Map<number, number> }> {
  const sent: AgentRecord[] = [];
  const refused = new Map<number, number>();
  let uploads = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: senders }, async (_, s) => {
      // Its own keep-alive connection, like an agent on its own host.
      const agent = emulatorAgent({ caPem: fx.caPem, loopback: false, keepAlive: true });
      const offset = Math.floor(Math.random() * 1_000);
      let n = 0;
      try {
        for (let round = 0; round < rounds; round++) {
          const due = t0 + offset + round * 1_000;
          if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
          const recs = realisticRecords(1 + Math.floor(Math.random() * 5), n, `${runId}-${s}`);
          n += recs.length;
          const a = await post(agent, s, recs);
          uploads++;
          if (a.status === okStatus) sent.push(...recs);
          else refused.set(a.status, (refused.get(a.status) ?? 0) + 1);
        }
      } finally {
        agent.destroy();
      }
    }),
  );
  return { sent, uploads, refused };
}

it('1,000 agents posting 1-5 records about every second: all arrive in per-agent order, with at least 20 times fewer upstream requests', async () => {
  const AGENTS = 1_000;
  const ROUNDS = 4;
  const t0 = Date.now();
  const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
  const { sent, uploads, refused } = await runFleet(
    AGENTS,
    ROUNDS,
    'fleet',
    (agent, _s, recs) => send(ingestUrl(fx), { agent, headers, body: JSON.stringify(recs) }),
    204,
  );
  const posted = Date.now() - t0;
  expect(Object.fromEntries(refused)).toEqual({});
  expect(uploads).toBe(AGENTS * ROUNDS);

  const ids = new Set(sent.map((r) => r.RecordId));
  const got = await waitForIds(fx.emu, { target: DCR_UP, stream: STREAM }, ids, 30_000);
  expect(new Set(got.map((r) => (r.record as { RecordId: string }).RecordId)).size).toBe(sent.length);
  const byId = new Map(got.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  expect(sent.filter((r) => JSON.stringify(byId.get(r.RecordId)) !== JSON.stringify(r)).slice(0, 3)).toEqual([]);
  expect(outOfOrderSenders(got)).toEqual([]);

  const upstream = fx.emu.requests({ api: 'logsIngestion', target: DCR_UP });
  console.log(`fleet: ${AGENTS} agents, ${uploads} uploads (${sent.length} records) in ${posted} ms -> ${upstream.length} upstream requests`);
  expect(upstream.length * 20).toBeLessThanOrEqual(uploads);
  expect(upstream.every((r) => r.status === 204 && r.gzip)).toBe(true);
}, 90_000);

it('a SharedKey Data Collector fleet: translated and re-signed routes, all records arrive in order, at least 20 times fewer upstream requests', async () => {
  const CLIENTS = 400;
  const ROUNDS = 4;
  // Even clients post Log-Type FirewallX (translated to Custom-FirewallX_CL on the Logs Ingestion
  // API); odd ones post Raw (forwarded unchanged, re-signed, to the upstream workspace).
  const logType = (s: number): 'FirewallX' | 'Raw' => (s % 2 === 0 ? 'FirewallX' : 'Raw');
  const asDc = (r: AgentRecord): Record<string, unknown> => {
    const { TimeGenerated, ...rest } = r;
    return { When: TimeGenerated, ...rest };
  };
  const { sent, uploads, refused } = await runFleet(
    CLIENTS,
    ROUNDS,
    'dcfleet',
    (agent, s, recs) =>
      postDataCollector({
        endpoint: fx.url,
        agent,
        workspaceId: WS_IN,
        sharedKey: fx.inboundKey,
        logType: logType(s),
        body: JSON.stringify(recs.map(asDc)),
        timeGeneratedField: 'When',
      }),
    200,
  );
  expect(Object.fromEntries(refused)).toEqual({});
  expect(uploads).toBe(CLIENTS * ROUNDS);

  const translated = sent.filter((r) => logType(senderAndSeq(r.RecordId)[0]) === 'FirewallX');
  const raw = sent.filter((r) => logType(senderAndSeq(r.RecordId)[0]) === 'Raw');
  const gotFw = await waitForIds(fx.emu, { target: DCR_UP, stream: FW_STREAM }, new Set(translated.map((r) => r.RecordId)), 30_000);
  const gotRaw = await waitForIds(fx.emu, { api: 'dataCollector', target: WS_UP, stream: 'Raw' }, new Set(raw.map((r) => r.RecordId)), 30_000);

  // Translated: TimeGenerated set from the time-generated-field; re-signed: unchanged, field kept.
  const fwById = new Map(gotFw.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  expect(fwById.size).toBe(translated.length);
  expect(
    translated.filter((r) => JSON.stringify(fwById.get(r.RecordId)) !== JSON.stringify({ ...asDc(r), TimeGenerated: r.TimeGenerated })).slice(0, 3),
  ).toEqual([]);
  const rawById = new Map(gotRaw.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  expect(rawById.size).toBe(raw.length);
  expect(raw.filter((r) => JSON.stringify(rawById.get(r.RecordId)) !== JSON.stringify(asDc(r))).slice(0, 3)).toEqual([]);
  expect(gotRaw.every((r) => r.timeGeneratedField === 'When')).toBe(true);
  expect(outOfOrderSenders(gotFw)).toEqual([]);
  expect(outOfOrderSenders(gotRaw)).toEqual([]);

  const liRequests = fx.emu.requests({ api: 'logsIngestion', target: DCR_UP, stream: FW_STREAM });
  const dcRequests = fx.emu.requests({ api: 'dataCollector', target: WS_UP });
  const perRoute = uploads / 2;
  console.log(
    `data collector fleet: ${uploads} signed uploads (${sent.length} records) -> ${liRequests.length} Logs Ingestion + ${dcRequests.length} Data Collector upstream requests`,
  );
  expect(liRequests.length).toBeGreaterThan(0);
  expect(dcRequests.length).toBeGreaterThan(0);
  expect(liRequests.length * 20).toBeLessThanOrEqual(perRoute);
  expect(dcRequests.length * 20).toBeLessThanOrEqual(perRoute);
  expect([...liRequests, ...dcRequests].every((r) => r.status === 200 || r.status === 204)).toBe(true);
}, 90_000);

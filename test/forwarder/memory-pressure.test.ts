/**
 * Acceptance (issue 9): memory pressure. The real `portcullis start` process with a tiny
 * `forwarder.limits.maxInflightBytes` takes a burst of large concurrent uploads (Logs Ingestion
 * near its 1 MiB limit, Data Collector of several MB): what does not fit is refused with 429 (Logs
 * Ingestion) / 503 (Data Collector) and Retry-After, the process stays up with its RSS bounded
 * (read from /proc/<pid>/status while the burst runs), and every upload that got a success arrives.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { emulatorAgent, postDataCollector, send, type HttpAnswer } from '../emulator/clients.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import {
  API_KEY,
  DCR_IN,
  DCR_UP,
  FW_STREAM,
  STREAM,
  WS_IN,
  prepareForwarder,
  realisticRecords,
  waitForIds,
  type AgentRecord,
  type ForwarderSetup,
} from './fixture.js';

const MAX_INFLIGHT = 4 * 1024 * 1024;
const RSS_BOUND = 300 * 1024 * 1024;
let emu: AzureMonitorEmulator;
let setup: ForwarderSetup;
let gw: GatewayProcess | undefined;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  setup = await prepareForwarder(emu, {
    forwarder: { pool: { threads: 1 }, batch: { maxAgeMs: 300 }, limits: { bodyIdleMs: 10_000, maxInflightBytes: MAX_INFLIGHT, retryAfterS: 2 } },
  });
});
afterAll(async () => {
  await gw?.stop('SIGKILL');
  await emu?.close();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Records whose JSON array is at most `bytes` (and close to it). */
function recordsOfSize(bytes: number, runId: string, from: number): AgentRecord[] {
  const recs = realisticRecords(Math.ceil(bytes / 400), from, runId);
  let size = Buffer.byteLength(JSON.stringify(recs));
  while (size > bytes) size -= Buffer.byteLength(JSON.stringify(recs.pop())) + 1;
  return recs;
}

it('a burst of large uploads over maxInflightBytes: 429 / 503 with Retry-After, the process stays up with RSS bounded, every success arrives', async () => {
  const g = await startGateway({ ...setup.config, log: { level: 'info', access: false } });
  gw = g;
  const listening = await g.waitForLog((r) => r.msg === 'forwarder listening', 15_000);
  const url = `https://127.0.0.1:${(listening.listen as { port: number }).port}`;
  const rssAtStart = rssBytes(g.pid);

  let peakRss = rssAtStart;
  const sampler = setInterval(() => {
    if (g.proc.exitCode === null) peakRss = Math.max(peakRss, rssBytes(g.pid));
  }, 20);

  const accepted: AgentRecord[] = [];
  const acceptedDc: AgentRecord[] = [];
  const refusals: Array<{ api: 'li' | 'dc'; status: number; retryAfter: unknown; code: unknown }> = [];
  let cut = 0;
  const ROUNDS = 3;
  const LI_PER_ROUND = 16; // ~1 MB each: 16 MB at once against a 4 MiB allowance
  const DC_PER_ROUND = 6; // 3 MB each: 18 MB at once
  const settle = (a: HttpAnswer, api: 'li' | 'dc', recs: AgentRecord[]): void => {
    const ok = api === 'li' ? 204 : 200;
    if (a.status === ok) (api === 'li' ? accepted : acceptedDc).push(...recs);
    else {
      const body = a.body.length > 0 ? (a.json<{ error?: { code?: string }; Error?: string }>() ?? {}) : {};
      refusals.push({ api, status: a.status, retryAfter: a.headers['retry-after'], code: body.error?.code ?? body.Error });
    }
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // One burst of each API per round: a burst of many ~1 MiB Logs Ingestion uploads holds the
      // whole allowance, and a 3 MB Data Collector upload can only ever fit when they are not there.
      const li = [
        ...Array.from({ length: LI_PER_ROUND }, async (_, i) => {
          const recs = recordsOfSize(1_000_000, 'mem-li', (round * 100 + i) * 10_000);
          const agent = emulatorAgent({ caPem: setup.caPem, loopback: false, keepAlive: false });
          try {
            settle(
              await send(`${url}/dataCollectionRules/${DCR_IN}/streams/${STREAM}?api-version=2023-01-01`, {
                agent,
                headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
                body: JSON.stringify(recs),
              }),
              'li',
              recs,
            );
          } catch {
            cut++; // the connection was closed under a body still being written: no status, nothing acknowledged
          } finally {
            agent.destroy();
          }
        }),
      ];
      await Promise.all(li);
      const dc = [
        ...Array.from({ length: DC_PER_ROUND }, async (_, i) => {
          const recs = recordsOfSize(3_000_000, 'mem-dc', (round * 100 + i) * 10_000);
          const agent = emulatorAgent({ caPem: setup.caPem, loopback: false, keepAlive: false });
          try {
            settle(
              await postDataCollector({
                endpoint: url,
                agent,
                workspaceId: WS_IN,
                sharedKey: setup.inboundKey,
                logType: 'FirewallX',
                body: JSON.stringify(recs),
              }),
              'dc',
              recs,
            );
          } catch {
            cut++;
          } finally {
            agent.destroy();
          }
        }),
      ];
      await Promise.all(dc);
      expect(g.proc.exitCode).toBeNull();
    }
  } finally {
    clearInterval(sampler);
  }
  const liRefused = refusals.filter((r) => r.api === 'li');
  const dcRefused = refusals.filter((r) => r.api === 'dc');
  console.log(
    `memory pressure: ${accepted.length + acceptedDc.length} records accepted, refused LI ${liRefused.length} / DC ${dcRefused.length}, ${cut} cut; RSS ${(rssAtStart / 1e6).toFixed(0)} MB at start, peak ${(peakRss / 1e6).toFixed(0)} MB`,
  );
  // Over the allowance: the documented overload answers, with Retry-After.
  expect(liRefused.length).toBeGreaterThan(0);
  expect(dcRefused.length).toBeGreaterThan(0);
  const kinds = (rs: typeof refusals): string[] => [...new Set(rs.map((r) => `${r.status} ${String(r.code)} retry-after=${String(r.retryAfter)}`))];
  expect(kinds(liRefused)).toEqual(['429 TooManyRequests retry-after=2']);
  expect(kinds(dcRefused)).toEqual(['503 ServiceUnavailable retry-after=2']);
  expect(accepted.length).toBeGreaterThan(0);
  expect(acceptedDc.length).toBeGreaterThan(0);
  // The process is up, answered everything it could, and its memory stayed bounded.
  expect(g.proc.exitCode).toBeNull();
  expect(peakRss).toBeGreaterThan(0);
  expect(peakRss).toBeLessThan(RSS_BOUND);
  // Nothing acknowledged is lost (the Data Collector uploads are translated to the FirewallX stream).
  const gotLi = await waitForIds(emu, { target: DCR_UP, stream: STREAM }, new Set(accepted.map((r) => r.RecordId)), 40_000);
  expect(new Set(gotLi.map((r) => (r.record as { RecordId: string }).RecordId)).size).toBe(accepted.length);
  const gotDc = await waitForIds(emu, { target: DCR_UP, stream: FW_STREAM }, new Set(acceptedDc.map((r) => r.RecordId)), 40_000);
  expect(new Set(gotDc.map((r) => (r.record as { RecordId: string }).RecordId)).size).toBe(acceptedDc.length);
  // Refusals were logged with the overload event (605).
  expect(g.logs.some((l) => l.event === 605)).toBe(true);
  expect(await g.stop('SIGTERM')).toBe(0);
}, 90_000);

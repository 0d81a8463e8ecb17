/**
 * Crash test: a client uploads continuously while the real `portcullis start` process is killed
 * with SIGKILL at random moments, five times, and restarted on the same spool. Afterwards every
 * record that got a 204 is at the emulator; duplicates (at-least-once) are counted and reported.
 * Two of the clients send full gzip uploads, which the gateway spools while it checks them (held
 * entries), and one of those also sends uploads that fail the check: a kill between the write and
 * the check must neither lose an acknowledged upload nor send one that was refused.
 */
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { emulatorAgent, send } from '../emulator/clients.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import { API_KEY, DCR_IN, DCR_UP, STREAM, prepareForwarder } from './fixture.js';

const KILLS = 5;

let emu: AzureMonitorEmulator;
let config: Record<string, unknown>;
let caPem: string;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  const setup = await prepareForwarder(emu, {
    // 64 KiB batches: a gzip upload of 32 KiB of JSON or more is forwarded as it came.
    forwarder: { batch: { maxAgeMs: 200, maxBytes: 65_536 }, pool: { threads: 1 } },
  });
  caPem = setup.caPem;
  // The real process logs at info: the test reads the ingest port from 'forwarder listening'.
  config = { ...setup.config, log: { level: 'info', access: false } };
});
// A failed assertion must not leave the last gateway running.
let live: GatewayProcess | null = null;
afterAll(async () => {
  if (live && live.proc.exitCode === null && live.proc.signalCode === null) {
    live.proc.kill('SIGKILL');
    await live.exited;
  }
  await emu?.close();
});

async function ingestPort(gw: GatewayProcess): Promise<number> {
  const r = await gw.waitForLog((l) => l.msg === 'forwarder listening', 30_000);
  return (r.listen as { port: number }).port;
}

it(`every acknowledged record survives ${KILLS} SIGKILLs; duplicates are counted`, async () => {
  const acked = new Map<string, Record<string, unknown>>();
  let seq = 0;
  let refusedOrBroken = 0;
  for (let round = 0; round <= KILLS; round++) {
    const gw = await startGateway(config);
    live = gw;
    const port = await ingestPort(gw);
    const agent = emulatorAgent({ caPem, loopback: false, keepAlive: true });
    const url = `https://127.0.0.1:${port}/dataCollectionRules/${DCR_IN}/streams/${STREAM}?api-version=2023-01-01`;
    let stop = false;
    // Four clients upload while the gateway lives; a 204 means "durable", anything else does not count.
    const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const clients = Array.from({ length: 4 }, async (_, client) => {
      let n = 0;
      while (!stop) {
        n++;
        // Clients 0 and 1: 400 records (~36 KB of JSON) gzip, forwarded as they came; client 1's
        // every third upload is cut short (not JSON): refused with 400 after it was spooled held.
        const full = client < 2;
        const invalid = client === 1 && n % 3 === 0;
        const recs = Array.from({ length: full ? 400 : 10 }, () => ({ TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: seq++ }));
        const json = invalid ? JSON.stringify(recs.map((r) => ({ ...r, Id: `refused-${r.Id}` }))).slice(0, -1) : JSON.stringify(recs);
        try {
          const a = full
            ? await send(url, { agent, headers: { ...headers, 'content-encoding': 'gzip' }, body: gzipSync(json) })
            : await send(url, { agent, headers, body: json });
          if (invalid) {
            if (a.status === 204) throw new Error('an upload that is not JSON was acknowledged');
            continue;
          }
          if (a.status === 204) for (const r of recs) acked.set(r.Id, r);
          else refusedOrBroken++;
          // The full uploads are ~10x the records of the small ones: paced, so the drain at the end stays short.
          if (full) await new Promise((r) => setTimeout(r, 40));
        } catch {
          refusedOrBroken++;
          if (!stop) await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    if (round < KILLS) {
      // Random moment: between 0.3 and 1.5 s of uploads.
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1_200)));
      gw.proc.kill('SIGKILL');
      await gw.exited;
      stop = true;
      await Promise.all(clients);
    } else {
      await new Promise((r) => setTimeout(r, 500));
      stop = true;
      await Promise.all(clients);
      // The last life: every acknowledged record must reach the emulator.
      // The emulator shares this process's event loop: the check is linear (one Set per look), or
      // the test itself would keep the emulator from answering (a quadratic check here once did).
      const deadline = Date.now() + 60_000;
      const missingNow = (): number => {
        const have = new Set(emu.records({ target: DCR_UP }).map((r) => (r.record as { Id: string }).Id));
        let n = 0;
        for (const id of acked.keys()) if (!have.has(id)) n++;
        return n;
      };
      while (missingNow() > 0 && Date.now() < deadline) {
        await emu.waitForRecords({ target: DCR_UP }, emu.records({ target: DCR_UP }).length + 1, Math.max(1, deadline - Date.now())).catch(() => undefined);
      }
      const got = emu.records({ target: DCR_UP });
      const ids = got.map((r) => (r.record as { Id: string }).Id);
      const present = new Set(ids);
      const missing = [...acked.keys()].filter((id) => !present.has(id));
      const duplicates = ids.length - present.size;
      console.log(
        `crash test: ${acked.size} acknowledged, ${missing.length} missing, ${duplicates} duplicates, ${refusedOrBroken} uploads refused or cut by a kill`,
      );
      if (missing.length > 0) {
        const missingSeqs = missing.map((id) => acked.get(id)?.Seq);
        console.log('missing Seq:', JSON.stringify(missingSeqs.slice(0, 40)));
        console.log('last gateway warnings:', JSON.stringify(gw.logs.filter((l) => l.level !== 'info' || String(l.msg).includes('spool')).slice(-30)));
      }
      expect(missing).toEqual([]);
      // Nothing refused was sent: no record of a refused upload, and no upstream 400.
      expect(ids.filter((id) => id.startsWith('refused-'))).toEqual([]);
      expect(emu.requests({ target: DCR_UP, status: 400 })).toEqual([]);
      for (const r of got) {
        const sent = acked.get((r.record as { Id: string }).Id);
        if (sent) expect(r.record).toEqual(sent);
      }
      expect(await gw.stop('SIGTERM')).toBe(0);
    }
    agent.destroy();
  }
  expect(acked.size).toBeGreaterThan(0);
}, 240_000);

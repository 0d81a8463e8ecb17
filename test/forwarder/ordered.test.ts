/**
 * batch.ordered (the default) with the pipelined sender: the next batch of a stream is taken and
 * compressed while one is being sent, and sent only after it (without the send chain the first
 * case fails: the second batch overtakes the held first). A stop while the upstream holds an
 * answer sends both batches back to the spool; after a restart they are sent again, in order.
 * (The other way a batch goes back unsent, a failed compression, is not provoked here.)
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { send } from '../emulator/clients.js';
import { API_KEY, DCR_UP, STREAM, ingestUrl, realisticRecords, startFixture, waitForIds, type Fixture } from './fixture.js';

let fx: Fixture;
const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };

beforeAll(async () => {
  // Small batches so a few dozen uploads make many of them; one upstream stream.
  fx = await startFixture({ forwarder: { batch: { maxBytes: 32_768, maxAgeMs: 50 } } });
}, 60_000);
afterAll(async () => {
  await fx?.close();
});

/** Record numbers in the order the emulator accepted them, first arrival of each only. */
function arrivalOrder(runId: string): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const r of fx.emu.records({ target: DCR_UP, stream: STREAM })) {
    const id = (r.record as { RecordId?: string }).RecordId ?? '';
    if (!id.startsWith(`${runId}-`)) continue;
    const n = Number(id.slice(runId.length + 1));
    if (!seen.has(n)) out.push(n);
    seen.add(n);
  }
  return out;
}

/** The upstream requests (accepted by the emulator) that carried records of this run. */
function acceptedRequests(runId: string): ReturnType<Fixture['emu']['requests']> {
  const seqs = new Set(
    fx.emu
      .records({ target: DCR_UP })
      .filter((r) => String((r.record as { RecordId?: string }).RecordId).startsWith(`${runId}-`))
      .map((r) => r.requestSeq),
  );
  return fx.emu.requests({ target: DCR_UP, status: 204 }).filter((r) => seqs.has(r.seq));
}

async function upload(runId: string, from: number, count: number): Promise<void> {
  const status = (await send(ingestUrl(fx), { agent: fx.agent, headers, body: JSON.stringify(realisticRecords(count, from, runId)) })).status;
  expect(status).toBe(204);
}

it('delivers a stream in accepted order while batches are prepared ahead of the send', async () => {
  const run = 'ordered-a';
  // The first request is held for a second: meanwhile later batches are taken and compressed.
  const held = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'delay', ms: 1_000 }, times: 1 });
  for (let i = 0; i < 40; i++) await upload(run, i * 20, 20);
  const ids = new Set(Array.from({ length: 800 }, (_, n) => `${run}-${n}`));
  await waitForIds(fx.emu, { target: DCR_UP }, ids, 30_000);
  expect(held.hits()).toBe(1);
  const order = arrivalOrder(run);
  expect(order).toHaveLength(800);
  expect(order).toEqual([...order].sort((a, b) => a - b));
  // Many requests, not one: the order above spans batches.
  const requests = new Set(
    fx.emu
      .records({ target: DCR_UP })
      .filter((r) => String((r.record as { RecordId?: string }).RecordId).startsWith(run))
      .map((r) => r.requestSeq),
  );
  expect(requests.size).toBeGreaterThan(5);
}, 60_000);

it("a client mixing full gzip uploads with small ones: in order, each full upload sent upstream as the client's own bytes", async () => {
  const run = 'ordered-sealed';
  const sealedSizes: number[] = [];
  let from = 0;
  for (let i = 0; i < 24; i++) {
    // 50 records (~23 KB of JSON) are over half of this fixture's 32 KiB batch: sealed. 5 are not.
    const count = i % 3 === 0 ? 50 : 5;
    const json = JSON.stringify(realisticRecords(count, from, run));
    from += count;
    if (count === 50) {
      const gz = gzipSync(json);
      sealedSizes.push(gz.byteLength);
      const res = await send(ingestUrl(fx), { agent: fx.agent, headers: { ...headers, 'content-encoding': 'gzip' }, body: gz });
      expect(res.status).toBe(204);
    } else {
      expect((await send(ingestUrl(fx), { agent: fx.agent, headers, body: json })).status).toBe(204);
    }
  }
  const ids = new Set(Array.from({ length: from }, (_, n) => `${run}-${n}`));
  await waitForIds(fx.emu, { target: DCR_UP }, ids, 30_000);
  const order = arrivalOrder(run);
  expect(order).toHaveLength(from);
  expect(order).toEqual([...order].sort((a, b) => a - b));
  // Each full upload is one upstream request of exactly its compressed bytes and its 50 records.
  const reqs = acceptedRequests(run);
  const passed = reqs.filter((r) => r.gzip && r.records === 50).map((r) => r.bytes);
  expect(passed).toEqual(sealedSizes);
}, 60_000);

it('a stop while one batch is being sent and the next waits behind it: after a restart every record arrives, in order', async () => {
  const run = 'ordered-b';
  // Every request is held 3 s: the gateway stops while the first is in flight and the next waits.
  const held = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'delay', ms: 3_000 }, times: Number.POSITIVE_INFINITY });
  for (let i = 0; i < 20; i++) await upload(run, i * 20, 20);
  await expect.poll(() => held.hits(), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
  // Stop at once: the send in flight is aborted, its batch and the one behind it stay in the spool.
  await fx.stop(0);
  held.cancel();
  await fx.restart();
  const ids = new Set(Array.from({ length: 400 }, (_, n) => `${run}-${n}`));
  await waitForIds(fx.emu, { target: DCR_UP }, ids, 30_000);
  const order = arrivalOrder(run);
  expect(order).toHaveLength(400);
  expect(order).toEqual([...order].sort((a, b) => a - b));
}, 60_000);

/** A gzip body of `json`, as two gzip members: valid, but its trailer describes the second only. */
function twoMembers(json: string, split: number): Buffer {
  return Buffer.concat([gzipSync(json.slice(0, split)), gzipSync(json.slice(split))]);
}

it('an upload spooled while it is checked: refused if the check fails (never sent, nothing blocked), spooled as decoded if it is not kept as it came', async () => {
  const run = 'held-ingest';
  const gz = { ...headers, 'content-encoding': 'gzip' };
  // Each of these looks like a full upload by its gzip trailer (20-30 KB of JSON against this
  // fixture's 32 KiB batch), so it is spooled (held) while a lane thread checks it.
  const good = JSON.stringify(realisticRecords(50, 0, run));
  const unclosed = JSON.stringify(realisticRecords(50, 1000, `${run}-bad`)).slice(0, -1);
  const notObjects = `[1,${JSON.stringify(realisticRecords(49, 2000, `${run}-bad`)).slice(1)}`;
  expect((await send(ingestUrl(fx), { agent: fx.agent, headers: gz, body: gzipSync(unclosed) })).status).toBe(400);
  expect((await send(ingestUrl(fx), { agent: fx.agent, headers: gz, body: gzipSync(notObjects) })).status).toBe(400);
  // Valid, but two gzip members: not sent as it came (the upstream would see what the trailer says
  // of the last member only); it goes through the spool decoded, once.
  const two = JSON.stringify(realisticRecords(60, 3000, run));
  expect((await send(ingestUrl(fx), { agent: fx.agent, headers: gz, body: twoMembers(two, 4_000) })).status).toBe(204);
  expect((await send(ingestUrl(fx), { agent: fx.agent, headers: gz, body: gzipSync(good) })).status).toBe(204);
  const ids = new Set([...Array.from({ length: 50 }, (_, n) => `${run}-${n}`), ...Array.from({ length: 60 }, (_, n) => `${run}-${3000 + n}`)]);
  await waitForIds(fx.emu, { target: DCR_UP }, ids, 30_000);
  const got = fx.emu.records({ target: DCR_UP }).map((r) => String((r.record as { RecordId?: string }).RecordId));
  expect(got.filter((id) => id.startsWith(`${run}-bad-`))).toEqual([]);
  expect(got.filter((id) => id.startsWith(`${run}-`) && !id.startsWith(`${run}-bad-`)).sort()).toEqual([...ids].sort());
  // The held copies of the refused uploads (and of the two-member one) were dropped, not left behind.
  await expect.poll(() => fx.service.spool?.pending().entries, { timeout: 10_000 }).toBe(0);
}, 60_000);

it('after a restart, sealed entries are checked again before they are sent: valid ones go in order, one that fails is dropped', async () => {
  const run = 'held-restart';
  const gz = { ...headers, 'content-encoding': 'gzip' };
  const refusing = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 503 }, times: Number.POSITIVE_INFINITY });
  for (let i = 0; i < 3; i++) {
    const res = await send(ingestUrl(fx), { agent: fx.agent, headers: gz, body: gzipSync(JSON.stringify(realisticRecords(50, i * 50, run))) });
    expect(res.status).toBe(204);
  }
  const spool = fx.service.spool;
  const [stream] = spool?.streams() ?? [];
  if (spool === null || stream === undefined) throw new Error('nothing spooled');
  // What a crash leaves when it comes between the write of a held upload and its check: a sealed
  // entry on disk that was never acknowledged. This one would fail the check (not JSON).
  await spool.append([{ stream, records: 0, payload: gzipSync('x'.repeat(20_000)), sealed: true, held: true }]);
  await fx.stop(0);
  refusing.cancel();
  await fx.restart();
  const ids = new Set(Array.from({ length: 150 }, (_, n) => `${run}-${n}`));
  await waitForIds(fx.emu, { target: DCR_UP }, ids, 30_000);
  const order = arrivalOrder(run);
  expect(order).toEqual([...order].sort((a, b) => a - b));
  // Each one was sent as it came, with its record count found again by the check.
  const reqs = acceptedRequests(run);
  expect(reqs.map((r) => r.records)).toEqual([50, 50, 50]);
  await expect.poll(() => fx.service.spool?.pending().entries, { timeout: 10_000 }).toBe(0);
  expect(fx.emu.requests({ target: DCR_UP, status: 400 })).toEqual([]);
}, 60_000);

/**
 * Acceptance (issue 9): the official `@azure/monitor-ingestion` LogsIngestionClient, endpoint = the
 * gateway, uploads 100,000 realistic records (~460 bytes each, the bench's agent events); every one
 * reaches the emulator exactly as sent, in gzip-compressed upstream requests within the 1 MiB limits.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DCR_IN, DCR_UP, STREAM, realisticRecords, sdkClient, startFixture, waitForIds, type Fixture } from './fixture.js';

const COUNT = 100_000;
let fx: Fixture;

beforeAll(async () => {
  fx = await startFixture();
});
afterAll(async () => {
  await fx?.close();
});

it(`the official SDK uploads ${COUNT.toLocaleString('en')} records through the gateway; every one arrives exactly as sent, gzip-compressed`, async () => {
  const records = realisticRecords(COUNT, 0, 'sdk100k');
  const avg = Buffer.byteLength(JSON.stringify(records.slice(0, 1_000))) / 1_000;
  expect(avg).toBeGreaterThan(400);
  // upload() throws AggregateLogsUploadError when any chunk was not accepted (204).
  await sdkClient(fx).upload(DCR_IN, STREAM, records, { maxConcurrency: 4 });

  const ids = new Set(records.map((r) => r.RecordId));
  expect(ids.size).toBe(COUNT);
  const got = await waitForIds(fx.emu, { target: DCR_UP, stream: STREAM }, ids, 60_000);
  const byId = new Map(got.map((r) => [(r.record as { RecordId: string }).RecordId, r.record]));
  expect(byId.size).toBe(COUNT);
  // Content compared field by field, every record (toEqual on one 100k array would be slow to diff).
  const wrong = records.filter((r) => JSON.stringify(byId.get(r.RecordId)) !== JSON.stringify(r));
  expect(wrong.slice(0, 3)).toEqual([]);
  // No duplicates without a fault or a crash.
  expect(got).toHaveLength(COUNT);

  const reqs = fx.emu.requests({ api: 'logsIngestion', target: DCR_UP, status: 204 });
  expect(reqs.length).toBeGreaterThan(0);
  expect(reqs.every((r) => r.gzip)).toBe(true);
  expect(got.every((r) => r.gzip)).toBe(true);
  expect(reqs.every((r) => r.bytes <= 1_048_576 && (r.decodedBytes ?? 0) <= 1_048_576)).toBe(true);
  const wire = reqs.reduce((n, r) => n + r.bytes, 0);
  const decoded = reqs.reduce((n, r) => n + (r.decodedBytes ?? 0), 0);
  console.log(
    `sdk 100k: ${reqs.length} upstream requests, ${(decoded / 1e6).toFixed(1)} MB JSON sent as ${(wire / 1e6).toFixed(1)} MB gzip (ratio ${(decoded / wire).toFixed(1)})`,
  );
  expect(decoded / wire).toBeGreaterThan(2);
}, 120_000);

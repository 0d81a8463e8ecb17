/**
 * The forwarder end to end, with real parts: the official LogsIngestionClient and a SharedKey
 * Data Collector client post to the gateway's ingest listener (TLS); records go through the pool,
 * the real spool, the batcher and the sender (undici, policy-vetted connect) to the emulator.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deflateRun } from '../../src/forwarder/pool/gzip.js';
import { streamKey } from '../../src/forwarder/routes.js';
import { postDataCollector, send } from '../emulator/clients.js';
import { API_KEY, DCR_IN, DCR_UP, FW_STREAM, OTHER_KEY, STREAM, WS_IN, WS_UP, ingestUrl, sdkClient, startFixture, type Fixture } from './fixture.js';

let fx: Fixture;

beforeAll(async () => {
  fx = await startFixture();
});
afterAll(async () => {
  await fx?.close();
});
beforeEach(() => fx.emu.reset());

function record(i: number): Record<string, unknown> {
  return { TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: i, Computer: `host-${i % 17}`, Msg: `event ${i} ${'x'.repeat(200)}` };
}

const liUrl = (dcr = DCR_IN, stream = STREAM): string => ingestUrl(fx, dcr, stream);
const bearer = (key = API_KEY): Record<string, string> => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

describe('Logs Ingestion API through the gateway', () => {
  it('the official SDK uploads 5,000 records; every one reaches the emulator exactly, gzip-compressed, within the 1 MiB limits', async () => {
    const records = Array.from({ length: 5_000 }, (_, i) => record(i));
    await sdkClient(fx).upload(DCR_IN, STREAM, records);
    const got = await fx.emu.waitForRecords({ target: DCR_UP, stream: STREAM }, records.length);
    expect(got).toHaveLength(records.length);
    const byId = new Map(got.map((r) => [(r.record as { Id: string }).Id, r.record]));
    for (const r of records) expect(byId.get(r.Id as string)).toEqual(r);
    const reqs = fx.emu.requests({ api: 'logsIngestion', status: 204 });
    expect(reqs.every((r) => r.gzip)).toBe(true);
    expect(reqs.every((r) => r.bytes <= 1_048_576 && (r.decodedBytes ?? 0) <= 1_048_576)).toBe(true);
  });

  it('many small uploads (50 agents, 8 uploads each) become at least 20 times fewer upstream requests', async () => {
    const agents = 50;
    const rounds = 8;
    const sent: Array<Record<string, unknown>> = [];
    await Promise.all(
      Array.from({ length: agents }, async (_, a) => {
        for (let r = 0; r < rounds; r++) {
          const recs = [record(a * 1000 + r * 2), record(a * 1000 + r * 2 + 1)];
          sent.push(...recs);
          const answer = await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify(recs) });
          expect(answer.status).toBe(204);
        }
      }),
    );
    const ids = new Set(sent.map((r) => r.Id));
    const deadline = Date.now() + 20_000;
    while (fx.emu.records({ target: DCR_UP }).filter((r) => ids.has((r.record as { Id: string }).Id)).length < sent.length && Date.now() < deadline) {
      await fx.emu.waitForRecords({ target: DCR_UP }, fx.emu.records({ target: DCR_UP }).length + 1, deadline - Date.now()).catch(() => undefined);
    }
    const got = fx.emu.records({ target: DCR_UP }).filter((r) => ids.has((r.record as { Id: string }).Id));
    expect(got).toHaveLength(sent.length);
    // Each agent's records arrive in the order it sent them.
    for (let a = 0; a < agents; a++) {
      const seqs = got.map((r) => (r.record as { Seq: number }).Seq).filter((s) => Math.floor(s / 1000) === a);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
    const requests = new Set(got.map((r) => r.requestSeq)).size;
    expect(requests * 20).toBeLessThanOrEqual(agents * rounds);
  });

  it('accepts a gzip body from a plain client', async () => {
    const { gzipSync } = await import('node:zlib');
    const recs = [record(1), record(2)];
    const a = await send(liUrl(), { agent: fx.agent, headers: { ...bearer(), 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(recs)) });
    expect(a.status).toBe(204);
    const got = await fx.emu.waitForRecords({ target: DCR_UP }, 2);
    expect(got.map((r) => r.record)).toEqual(recs);
  });

  it('an upstream 429 with Retry-After is waited out and the records arrive once', async () => {
    const fault = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 429, retryAfterSec: 1 }, times: 1 });
    const recs = [record(7)];
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify(recs) })).status).toBe(204);
    const got = await fx.emu.waitForRecords({ target: DCR_UP }, 1);
    expect(got.map((r) => r.record)).toEqual(recs);
    const [hit] = fault.hitTimes();
    const [ok] = await fx.emu.waitForRequests({ api: 'logsIngestion', status: 204 }, 1);
    expect(hit).toBeDefined();
    expect((ok?.at ?? 0) - (hit ?? 0)).toBeGreaterThanOrEqual(1_000);
  });

  it('an upstream 400 goes to the dead-letter folder with the answer, and leaves the spool', async () => {
    fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 400, code: 'InvalidStream', message: 'bad stream' }, times: 1 });
    const recs = [record(9)];
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify(recs) })).status).toBe(204);
    const folder = join(fx.dir, 'dead-letter', 'dcr-main');
    const deadline = Date.now() + 10_000;
    let metas: string[] = [];
    while (Date.now() < deadline) {
      try {
        metas = readdirSync(folder).filter((f) => f.endsWith('.meta.json'));
      } catch {
        metas = [];
      }
      if (metas.length > 0 && fx.service.spool?.pending().entries === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(metas.length).toBe(1);
    const meta = JSON.parse(readFileSync(join(folder, metas[0] ?? ''), 'utf8')) as { status: number; answer: string; records: number };
    expect(meta.status).toBe(400);
    expect(meta.answer).toContain('InvalidStream');
    expect(meta.records).toBe(1);
    expect(JSON.parse(readFileSync(join(folder, (metas[0] ?? '').replace('.meta.json', '.json')), 'utf8'))).toEqual(recs);
    expect(fx.service.spool?.pending().entries).toBe(0);
    expect(await fx.registry.getSingleMetricAsString('portcullis_forwarder_dead_lettered_records_total')).toMatch(/destination="dcr-main"} 1/);
  });
});

describe('Data Collector API through the gateway', () => {
  it('a SharedKey client posting Log-Type FirewallX is translated to the Logs Ingestion stream, time-generated-field -> TimeGenerated', async () => {
    const recs = [
      { When: '2026-01-02T03:04:05.000Z', Src: '10.0.0.1', Action: 'deny' },
      { When: '2026-01-02T03:04:06.000Z', Src: '10.0.0.2', Action: 'allow' },
    ];
    const a = await postDataCollector({
      endpoint: fx.url,
      agent: fx.agent,
      workspaceId: WS_IN,
      sharedKey: fx.inboundKey,
      logType: 'FirewallX',
      body: JSON.stringify(recs),
      timeGeneratedField: 'When',
    });
    expect(a.status).toBe(200);
    const got = await fx.emu.waitForRecords({ target: DCR_UP, stream: FW_STREAM }, 2);
    expect(got.map((r) => r.record)).toEqual(recs.map((r) => ({ ...r, TimeGenerated: r.When })));
  });

  it('a Raw route is re-signed with the upstream workspace key and keeps its Log-Type and time-generated-field', async () => {
    const recs = [{ When: '2026-01-02T03:04:05.000Z', Id: randomUUID() }];
    const a = await postDataCollector({
      endpoint: fx.url,
      agent: fx.agent,
      workspaceId: WS_IN,
      sharedKey: fx.inboundKey,
      logType: 'Raw',
      body: JSON.stringify(recs),
      timeGeneratedField: 'When',
    });
    expect(a.status).toBe(200);
    const got = await fx.emu.waitForRecords({ api: 'dataCollector', target: WS_UP }, 1);
    expect(got.map((r) => r.record)).toEqual(recs);
    expect(got[0]?.stream).toBe('Raw');
    expect(got[0]?.timeGeneratedField).toBe('When');
  });

  it('a wrong signature is 403 InvalidAuthorization', async () => {
    const wrong = Buffer.from('not-the-workspace-key-at-all-0123456789').toString('base64');
    const a = await postDataCollector({ endpoint: fx.url, agent: fx.agent, workspaceId: WS_IN, sharedKey: wrong, logType: 'FirewallX', body: '[{"a":1}]' });
    expect(a.status).toBe(403);
    expect(a.json()).toEqual({ Error: 'InvalidAuthorization', Message: expect.any(String) });
  });

  it('a bad Log-Type, a stale x-ms-date and a non-JSON body get the documented 400 codes', async () => {
    const base = { endpoint: fx.url, agent: fx.agent, workspaceId: WS_IN, sharedKey: fx.inboundKey };
    const badType = await postDataCollector({ ...base, logType: 'Bad-Type!', body: '[]' });
    expect([badType.status, badType.json<{ Error: string }>().Error]).toEqual([400, 'InvalidLogType']);
    const stale = await postDataCollector({ ...base, logType: 'FirewallX', body: '[]', now: new Date(Date.now() - 3_600_000) });
    expect([stale.status, stale.json<{ Error: string }>().Error]).toEqual([400, 'InvalidTimestamp']);
    const notJson = await postDataCollector({ ...base, logType: 'FirewallX', body: '{"oops' });
    expect([notJson.status, notJson.json<{ Error: string }>().Error]).toEqual([400, 'InvalidDataFormat']);
  });
});

describe('bad input is answered and nothing breaks', () => {
  it('no credentials 401, unknown key 401, a route the identity may not use 403, an unknown stream 404', async () => {
    const body = JSON.stringify([record(1)]);
    expect((await send(liUrl(), { agent: fx.agent, headers: { 'content-type': 'application/json' }, body })).status).toBe(401);
    const unknown = await send(liUrl(), { agent: fx.agent, headers: bearer('nope'), body });
    expect(unknown.status).toBe(401);
    expect(unknown.json()).toEqual({ error: { code: 'InvalidToken', message: expect.any(String) } });
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(OTHER_KEY), body })).status).toBe(403);
    const missing = await send(liUrl(DCR_IN, 'Custom-Nope_CL'), { agent: fx.agent, headers: bearer(), body });
    expect(missing.status).toBe(404);
  });

  it('not JSON, not an array, wrong content type, wrong api-version', async () => {
    const bad = await send(liUrl(), { agent: fx.agent, headers: bearer(), body: '[{"a":' });
    expect([bad.status, bad.json<{ error: { code: string } }>().error.code]).toEqual([400, 'InvalidJson']);
    const obj = await send(liUrl(), { agent: fx.agent, headers: bearer(), body: '{"a":1}' });
    expect([obj.status, obj.json<{ error: { code: string } }>().error.code]).toEqual([400, 'InvalidPayload']);
    const scalars = await send(liUrl(), { agent: fx.agent, headers: bearer(), body: '[1,2]' });
    expect(scalars.status).toBe(400);
    const ct = await send(liUrl(), { agent: fx.agent, headers: { ...bearer(), 'content-type': 'text/plain' }, body: '[]' });
    expect(ct.status).toBe(415);
    const v = await send(liUrl().replace('2023-01-01', '1999-01-01'), { agent: fx.agent, headers: bearer(), body: '[]' });
    expect(v.status).toBe(400);
  });

  it('a truncated gzip body is 400; a gzip bomb is 413 without inflating it whole', async () => {
    const { gzipSync } = await import('node:zlib');
    const gz = gzipSync(JSON.stringify([record(1), record(2)]));
    const truncated = await send(liUrl(), { agent: fx.agent, headers: { ...bearer(), 'content-encoding': 'gzip' }, body: gz.subarray(0, gz.length - 10) });
    expect([truncated.status, truncated.json<{ error: { code: string } }>().error.code]).toEqual([400, 'InvalidContentEncoding']);
    // 64 MiB of zeros inside "[...]" compresses to ~64 KiB.
    const bomb = gzipSync(Buffer.concat([Buffer.from('[{"a":"'), Buffer.alloc(64 * 1024 * 1024, 0x30), Buffer.from('"}]')]), { level: 9 });
    expect(bomb.length).toBeLessThan(1_048_576);
    const rssBefore = process.memoryUsage.rss();
    const a = await send(liUrl(), { agent: fx.agent, headers: { ...bearer(), 'content-encoding': 'gzip' }, body: bomb });
    expect([a.status, a.json<{ error: { code: string } }>().error.code]).toEqual([413, 'ContentLengthLimitExceeded']);
    // The pool thread stopped at the 1 MiB limit: nowhere near 64 MiB more memory.
    expect(process.memoryUsage.rss() - rssBefore).toBeLessThan(48 * 1024 * 1024);
  });

  it('a 100 MB streamed body is cut at the limit with 413 (not buffered), a declared one refused at once', async () => {
    const { request } = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(liUrl(), { method: 'POST', agent: fx.agent, headers: { ...bearer(), 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (err) => reject(err));
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 100) {
          sent++;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    }).catch((err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 413 : Promise.reject(err)));
    expect(status).toBe(413);
    // Declared too large: answered from the headers alone, before any body byte.
    const declared = await new Promise<number>((resolve, reject) => {
      const req = request(liUrl(), { method: 'POST', agent: fx.agent, headers: { ...bearer(), 'content-length': String(100 * 1024 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('[');
    });
    expect(declared).toBe(413);
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify([record(5)]) })).status).toBe(204);
  });

  it('a stalled upload times out with 408 and the listener keeps serving', async () => {
    const { request } = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(liUrl(), { method: 'POST', agent: fx.agent, headers: { ...bearer(), 'content-length': '1000' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('[{"a":');
    });
    expect(status).toBe(408);
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify([record(3)]) })).status).toBe(204);
  });
});

describe('drain and restart', () => {
  it('deflate runs in the spool (as the syslog collector writes them) go out stitched to a DCR, mixed with plain entries, and inflated to a workspace', async () => {
    const spool = fx.service.spool;
    if (!spool) throw new Error('the forwarder has no spool');
    const json = (recs: Array<Record<string, unknown>>): Buffer => Buffer.from(recs.map((r) => JSON.stringify(r)).join(','));
    const a = Array.from({ length: 300 }, (_, i) => record(i));
    const b = Array.from({ length: 5 }, (_, i) => record(1000 + i));
    const c = Array.from({ length: 200 }, (_, i) => record(2000 + i));
    // One Logs Ingestion stream: a run, a plain entry, another run, in that order.
    await spool.append([
      { stream: streamKey('dcr-main', STREAM), records: a.length, payload: Buffer.from(deflateRun(json(a), 1)), deflated: true },
      { stream: streamKey('dcr-main', STREAM), records: b.length, payload: json(b) },
      { stream: streamKey('dcr-main', STREAM), records: c.length, payload: Buffer.from(deflateRun(json(c), 6)), deflated: true },
    ]);
    const ids = new Set([...a, ...b, ...c].map((r) => r.Id));
    const mine = (): unknown[] =>
      fx.emu
        .records({ target: DCR_UP, stream: STREAM })
        .map((r) => r.record)
        .filter((r) => ids.has((r as { Id: string }).Id));
    while (mine().length < ids.size)
      await fx.emu.waitForRecords({ target: DCR_UP, stream: STREAM }, fx.emu.records({ target: DCR_UP, stream: STREAM }).length + 1);
    expect(mine()).toEqual([...a, ...b, ...c]);
    expect(fx.emu.requests({ api: 'logsIngestion', status: 204 }).every((r) => r.gzip)).toBe(true);
    // A Data Collector destination takes JSON: the runs of its stream are inflated for it.
    const d = [{ When: '2026-01-02T03:04:05.000Z', Id: randomUUID() }];
    await spool.append([{ stream: streamKey('ws-legacy', 'Raw'), records: 1, payload: Buffer.from(deflateRun(json(d), 1)), deflated: true }]);
    const legacy = await fx.emu.waitForRecords({ api: 'dataCollector', target: WS_UP }, 1);
    expect(legacy.map((r) => r.record)).toEqual(d);
  });

  it('records accepted during an upstream outage stay in the spool over a restart and are delivered after it', async () => {
    const outage = fx.emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 503, retryAfterSec: 1 }, times: Number.POSITIVE_INFINITY });
    const recs = Array.from({ length: 50 }, (_, i) => record(i));
    expect((await send(liUrl(), { agent: fx.agent, headers: bearer(), body: JSON.stringify(recs) })).status).toBe(204);
    await fx.emu.waitForRequests({ api: 'logsIngestion', status: 503 }, 1);
    await fx.stop(200);
    expect(fx.emu.records({ target: DCR_UP })).toHaveLength(0);
    outage.cancel();
    await fx.restart();
    const ids = new Set(recs.map((r) => r.Id));
    const mine = (): unknown[] =>
      fx.emu
        .records({ target: DCR_UP })
        .map((r) => r.record)
        .filter((r) => ids.has((r as { Id: string }).Id));
    while (mine().length < recs.length) await fx.emu.waitForRecords({ target: DCR_UP }, fx.emu.records({ target: DCR_UP }).length + 1);
    expect(mine()).toEqual(recs);
  });
});

/**
 * The forwarder under upstream faults and limits: expired tokens, destinations the allowlist does
 * not cover, a full spool, client certificates.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { testCA } from '../helpers/tls.js';
import { emulatorAgent, send } from '../emulator/clients.js';
import { API_KEY, CLIENT, DCR_IN, DCR_UP, STREAM, startFixture, type Fixture } from './fixture.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

const url = (f: Fixture): string => `${f.url}/dataCollectionRules/${DCR_IN}/streams/${STREAM}?api-version=2023-01-01`;
const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
const rec = (i: number): Record<string, unknown> => ({ TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: i });

describe('upstream faults', () => {
  it('a 401 from upstream forces one token refresh and the batch is delivered', async () => {
    fx = await startFixture();
    const f = fx;
    expect((await send(url(f), { agent: f.agent, headers, body: JSON.stringify([rec(1)]) })).status).toBe(204);
    await f.emu.waitForRecords({ target: DCR_UP }, 1);
    const tokensBefore = f.emu.tokensIssued(CLIENT);
    f.emu.expireTokens();
    const recs = [rec(2)];
    expect((await send(url(f), { agent: f.agent, headers, body: JSON.stringify(recs) })).status).toBe(204);
    await f.emu.waitForRecords({ target: DCR_UP }, 2);
    expect(f.emu.records({ target: DCR_UP })[1]?.record).toEqual(recs[0]);
    expect(f.emu.tokensIssued(CLIENT)).toBe(tokensBefore + 1);
    expect(f.emu.requests({ api: 'logsIngestion', status: 401 })).toHaveLength(1);
    expect(await f.registry.getSingleMetricAsString('portcullis_forwarder_token_refreshes_total')).toMatch(/destination="dcr-main"} 1/);
  });

  it('network resets are retried until the batch gets through', async () => {
    fx = await startFixture();
    const f = fx;
    const reset = f.emu.faults.add({ api: 'logsIngestion', action: { kind: 'reset' }, times: 2 });
    const recs = [rec(3)];
    expect((await send(url(f), { agent: f.agent, headers, body: JSON.stringify(recs) })).status).toBe(204);
    const got = await f.emu.waitForRecords({ target: DCR_UP }, 1);
    expect(got.map((r) => r.record)).toEqual(recs);
    expect(reset.hits()).toBe(2);
    expect(await f.registry.getSingleMetricAsString('portcullis_forwarder_retries_total')).toMatch(/reason="network"} 2/);
  });

  it('an upstream the allowlist does not cover is never contacted; the records wait in the spool', async () => {
    // The destination's host is not in allow.rules: the connector refuses before any DNS or TCP.
    fx = await startFixture();
    const f = fx;
    f.service.reload({ ...f.config, allow: { ...f.config.allow, rules: [] } });
    expect((await send(url(f), { agent: f.agent, headers, body: JSON.stringify([rec(4)]) })).status).toBe(204);
    const deadline = Date.now() + 10_000;
    let retries = '';
    while (Date.now() < deadline) {
      retries = await f.registry.getSingleMetricAsString('portcullis_forwarder_retries_total');
      if (/reason="network"} [1-9]/.test(retries)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(retries).toMatch(/reason="network"} [1-9]/);
    expect(f.emu.requests({ api: 'logsIngestion' })).toHaveLength(0);
    expect(f.service.spool?.pending().entries).toBe(1);
    // Allowed again: delivered.
    f.service.reload(f.config);
    await f.emu.waitForRecords({ target: DCR_UP }, 1);
  });
});

describe('limits', () => {
  it('a full spool answers 429 with Retry-After; nothing acknowledged is lost', async () => {
    fx = await startFixture({ forwarder: { spool: { maxBytes: 1_048_576, segmentBytes: 65_536 } } });
    const f = fx;
    const outage = f.emu.faults.add({ api: 'logsIngestion', action: { kind: 'status', status: 503, retryAfterSec: 1 }, times: Number.POSITIVE_INFINITY });
    const accepted: Array<Record<string, unknown>> = [];
    let refused: { status: number; retryAfter: unknown } | null = null;
    for (let i = 0; i < 60 && !refused; i++) {
      const recs = Array.from({ length: 50 }, (_, j) => ({ ...rec(i * 50 + j), pad: 'p'.repeat(400) }));
      const a = await send(url(f), { agent: f.agent, headers, body: JSON.stringify(recs) });
      if (a.status === 204) accepted.push(...recs);
      else refused = { status: a.status, retryAfter: a.headers['retry-after'] };
    }
    expect(refused).toEqual({ status: 429, retryAfter: '5' });
    expect(f.service.readiness().reasons).toContain('forwarder spool full: uploads are refused');
    outage.cancel();
    const ids = new Set(accepted.map((r) => r.Id));
    const mine = (): number => f.emu.records({ target: DCR_UP }).filter((r) => ids.has((r.record as { Id: string }).Id)).length;
    while (mine() < accepted.length) await f.emu.waitForRecords({ target: DCR_UP }, f.emu.records({ target: DCR_UP }).length + 1, 30_000);
    expect(mine()).toBe(accepted.length);
  });

  it('a client certificate listed for an identity is accepted; another one is not', async () => {
    fx = await startFixture();
    const f = fx;
    const ca = await testCA();
    const good = await ca.issueClient({ commonNames: ['agent-1'], organization: 'Contoso' });
    const other = await ca.issueClient({ commonNames: ['agent-2'], organization: 'Contoso' });
    const body = JSON.stringify([rec(5)]);
    const ct = { 'content-type': 'application/json' };
    const withCert = emulatorAgent({ caPem: ca.caPem, loopback: false, cert: good.certPem, key: good.keyPem });
    const withOther = emulatorAgent({ caPem: ca.caPem, loopback: false, cert: other.certPem, key: other.keyPem });
    try {
      expect((await send(url(f), { agent: withCert, headers: ct, body })).status).toBe(204);
      expect((await send(url(f), { agent: withOther, headers: ct, body })).status).toBe(401);
    } finally {
      withCert.destroy();
      withOther.destroy();
    }
  });
});

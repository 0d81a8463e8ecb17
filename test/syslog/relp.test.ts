/**
 * The RELP listener with real parts: rsyslog's omrelp (librelp) sending to it, each message at the
 * emulator as a Syslog record; and a raw client on 127.0.0.1 for what a sender can get wrong
 * (malformed frames, commands before open) and for the promise itself: no ack while the spool is
 * full, the acks once the messages are in it.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleSum } from '../helpers/metrics.js';
import { requireBinary } from '../helpers/system.js';
import { testCA } from '../helpers/tls.js';
import { startSyslogFixture, SYSLOG_STREAM, DCR_SENTINEL, type SyslogFixture } from './fixture.js';
import { startRsyslog, type Rsyslog } from './rsyslog.js';
import { encodeFrame, OFFERS, RawClient } from './relp-client.js';

const RSYSLOGD = requireBinary('rsyslogd');
describe('RELP listener', () => {
  let fx: SyslogFixture;
  const senders: Rsyslog[] = [];
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => sampleSum(await fx.registry.metrics(), name, labels) || 0;

  beforeAll(async () => {
    fx = await startSyslogFixture({
      forwarder: { spool: { maxBytes: 1_048_576, segmentBytes: 65_536, fsync: 'always' }, batch: { maxAgeMs: 200, maxBytes: 262_144 } },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(senders.map((s) => s.stop()));
    await fx?.close();
  });

  it.skipIf(!RSYSLOGD)('rsyslog omrelp: every message arrives, acknowledged', async () => {
    const r = await startRsyslog(RSYSLOGD ?? '', {
      modules: 'module(load="omrelp")',
      action: `action(type="omrelp" target="127.0.0.1" port="${fx.port('relp')}")`,
    });
    senders.push(r);
    const lines = Array.from({ length: 50 }, (_, i) => `<${16 * 8 + 6}>Mar  2 11:00:00 fw-02 relpd[${200 + i}]: relp message ${i}`);
    await r.send(lines);
    const recs = await fx.records(SYSLOG_STREAM, 50, (x) => String(x.SyslogMessage).startsWith('relp message'));
    expect(recs.map((x) => x.SyslogMessage).sort()).toEqual(lines.map((_, i) => `relp message ${i}`).sort());
    for (const rec of recs)
      expect(rec).toMatchObject({ Computer: 'fw-02', HostIP: '127.0.0.1', Facility: 'local0', SeverityLevel: 'info', ProcessName: 'relpd' });
    await expect.poll(() => metric('portcullis_syslog_relp_acks_total', { listener: 'relp' }), { timeout: 20_000 }).toBeGreaterThanOrEqual(50);
  });

  it.skipIf(!RSYSLOGD)('rsyslog omrelp over TLS (tls="on", the gateway certificate checked against the CA)', async () => {
    // librelp's GnuTLS client offers only anonymous ciphers unless it has a certificate of its own.
    const client = await (await testCA()).issueClient({ commonNames: ['rsyslog-relp-1'], organization: 'Contoso' });
    writeFileSync(join(fx.dir, 'relp-client.crt'), client.certPem);
    writeFileSync(join(fx.dir, 'relp-client.key'), client.keyPem);
    const r = await startRsyslog(RSYSLOGD ?? '', {
      modules: 'module(load="omrelp")',
      action:
        `action(type="omrelp" target="127.0.0.1" port="${fx.port('relp-tls')}" tls="on" tls.caCert="${fx.caFile}" tls.authMode="name"` +
        ` tls.permittedPeer="localhost" tls.myCert="${join(fx.dir, 'relp-client.crt')}" tls.myPrivKey="${join(fx.dir, 'relp-client.key')}")`,
    });
    senders.push(r);
    const lines = Array.from({ length: 20 }, (_, i) => `<${4 * 8 + 3}>Mar  2 11:00:00 bastion sshd[9${i}]: relp tls ${i}`);
    await r.send(lines);
    const recs = await fx
      .records(SYSLOG_STREAM, 20, (x) => String(x.SyslogMessage).startsWith('relp tls '))
      .catch((err: unknown) => {
        console.log('rsyslogd stderr:', r.stderr());
        throw err;
      });
    expect(recs.map((x) => x.SyslogMessage).sort()).toEqual(lines.map((_, i) => `relp tls ${i}`).sort());
    await expect.poll(() => metric('portcullis_syslog_relp_acks_total', { listener: 'relp-tls' }), { timeout: 20_000 }).toBeGreaterThanOrEqual(20);
  });

  it('answers open with its offers, acks each syslog frame in txnr order, answers close and ends', async () => {
    const c = await RawClient.open(fx.port('relp'));
    c.frame(1, 'open', OFFERS);
    for (let i = 0; i < 5; i++) c.frame(2 + i, 'syslog', `<13>Mar  2 11:00:00 h app: raw ${i}`);
    c.frame(7, 'close');
    await c.closed;
    const openRsp = '200 OK\nrelp_version=0\nrelp_software=portcullis\ncommands=syslog';
    expect(c.received).toBe([`1 rsp ${openRsp.length} ${openRsp}`, ...[2, 3, 4, 5, 6].map((t) => `${t} rsp 6 200 OK`), '7 rsp 0', ''].join('\n'));
    await fx.records(SYSLOG_STREAM, 5, (x) => String(x.SyslogMessage).startsWith('raw '));
  });

  it('closes the connection on a malformed frame, a txnr out of sequence, or syslog before open: counted', async () => {
    const before = await metric('portcullis_syslog_connections_closed_total', { listener: 'relp', reason: 'relp_protocol' });
    const bad = await RawClient.open(fx.port('relp'));
    bad.socket.write('1 open 3 short\n'); // DATALEN says 3: no LF after "sho"
    await bad.closed;
    const skip = await RawClient.open(fx.port('relp'));
    skip.frame(1, 'open', OFFERS);
    skip.frame(3, 'syslog', '<13>skipped');
    await skip.closed;
    expect(skip.received).toMatch(/^1 rsp \d+ 200 OK\n/);
    const early = await RawClient.open(fx.port('relp'));
    early.frame(1, 'syslog', '<13>too early');
    await early.closed;
    expect(early.received).toMatch(/^1 rsp \d+ 500 /);
    expect(await metric('portcullis_syslog_connections_closed_total', { listener: 'relp', reason: 'relp_protocol' })).toBe(before + 3);
    // Still serving.
    const c = await RawClient.open(fx.port('relp'));
    c.frame(1, 'open', OFFERS);
    c.frame(2, 'syslog', '<13>Mar  2 11:00:00 h app: after the bad ones');
    await fx.records(SYSLOG_STREAM, 1, (x) => x.SyslogMessage === 'after the bad ones');
    await expect.poll(() => c.received).toContain('2 rsp 6 200 OK\n');
    c.socket.destroy();
  });

  it('acks nothing while the spool is full; acks every message once it is in the spool', async () => {
    const outage = fx.emu.faults.add({
      api: 'logsIngestion',
      target: DCR_SENTINEL,
      action: { kind: 'status', status: 503, retryAfterSec: 1 },
      times: Number.POSITIVE_INFINITY,
    });
    const c = await RawClient.open(fx.port('relp'));
    c.frame(1, 'open', OFFERS);
    const N = 6_000;
    // One write per 500 frames, as a sender with a large window would.
    for (let start = 0; start < N; start += 500) {
      const parts: Buffer[] = [];
      for (let i = start; i < start + 500; i++) {
        // Random text: syslog entries are spooled compressed; padding would never fill the spool.
        parts.push(encodeFrame(i + 2, 'syslog', `<134>Mar  2 11:00:00 fw-bp app[1]: full ${i} ${randomBytes(250).toString('hex')}`));
      }
      c.socket.write(Buffer.concat(parts));
    }
    await expect.poll(() => metric('portcullis_syslog_backpressure_total', { listener: 'relp' }), { timeout: 30_000 }).toBeGreaterThan(0);
    const ackedDuringOutage = (c.received.match(/ rsp 6 200 OK\n/g) ?? []).length;
    expect(ackedDuringOutage).toBeLessThan(N);
    // Every ack so far is for a message in the spool or delivered: none is at the emulator yet, so in the spool.
    outage.cancel();
    await expect.poll(() => (c.received.match(/ rsp 6 200 OK\n/g) ?? []).length, { timeout: 60_000 }).toBe(N);
    const got = await fx.records(SYSLOG_STREAM, N, (r) => String(r.SyslogMessage).startsWith('full '), 60_000);
    expect(new Set(got.map((r) => String(r.SyslogMessage).split(' ')[1])).size).toBe(N);
    c.socket.destroy();
  }, 120_000);

  // Last: it drains the collector.
  it('at drain, acks what it read, then sends the serverclose hint and ends the connection', async () => {
    const c = await RawClient.open(fx.port('relp'));
    c.frame(1, 'open', OFFERS);
    for (let i = 0; i < 20; i++) c.frame(2 + i, 'syslog', `<13>Mar  2 11:00:00 h app: drain ${i}`);
    await expect.poll(() => c.received).toMatch(/^1 rsp /);
    await fx.syslog.drain(10_000);
    await c.closed;
    const acks = c.received.match(/^\d+ rsp 6 200 OK$/gm) ?? [];
    expect(acks).toEqual(Array.from({ length: 20 }, (_, i) => `${i + 2} rsp 6 200 OK`));
    expect(c.received.endsWith('0 serverclose 0\n')).toBe(true);
    // Not waited for at the emulator: after the full-spool case above, one loaded run saw delivery
    // stall for 20 s, as in limits.test.ts's skipped case (issue 10); ack-after-spool is asserted above it.
  });
});

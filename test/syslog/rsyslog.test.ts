/**
 * rsyslog forwarding to Portcullis as appliances' relays and Linux servers do: omfwd over plain
 * TCP (its traditional format, newline framing) and over TLS (gtls driver, octet-counted RFC 5424,
 * a client certificate from the test CA that the listener requires). Each message arrives at the
 * emulator as a Syslog record, checked field by field.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { sampleSum } from '../helpers/metrics.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../helpers/system.js';
import { testCA } from '../helpers/tls.js';
import { startSyslogFixture, SYSLOG_STREAM, type SyslogFixture } from './fixture.js';
import { startRsyslog, type Rsyslog } from './rsyslog.js';

const RSYSLOGD = requireBinary('rsyslogd');

describe.skipIf(!RSYSLOGD)('rsyslog omfwd -> syslog collector', () => {
  let fx: SyslogFixture;
  let clientCertDir = '';
  const senders: Rsyslog[] = [];
  beforeAll(async () => {
    const ca = await testCA();
    fx = await startSyslogFixture({ tlsClientCa: { caFile: ca.caFile, required: true } });
    clientCertDir = fx.dir;
    const client = await ca.issueClient({ commonNames: ['rsyslog-relay-1'], organization: 'Contoso' });
    writeFileSync(join(clientCertDir, 'client.crt'), client.certPem);
    writeFileSync(join(clientCertDir, 'client.key'), client.keyPem);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(senders.map((s) => s.stop()));
    await fx?.close();
  });

  it('plain TCP: RSYSLOG_TraditionalForwardFormat, newline framing', async () => {
    const r = await startRsyslog(RSYSLOGD ?? '', {
      action: `action(type="omfwd" target="127.0.0.1" port="${fx.port('tcp')}" protocol="tcp")`,
    });
    senders.push(r);
    const lines = Array.from({ length: 20 }, (_, i) => `<${16 * 8 + 5}>Mar  2 11:00:00 fw-01 relayed[${100 + i}]: tcp message ${i}`);
    await r.send(lines);
    const recs = await fx.records(SYSLOG_STREAM, 20, (x) => String(x.SyslogMessage).startsWith('tcp message'));
    expect(recs.map((x) => x.SyslogMessage).sort()).toEqual(lines.map((_, i) => `tcp message ${i}`).sort());
    for (const rec of recs) {
      expect(rec).toMatchObject({ Computer: 'fw-01', HostIP: '127.0.0.1', Facility: 'local0', SeverityLevel: 'notice', ProcessName: 'relayed' });
      expect(rec.ProcessID).toBe(100 + Number(String(rec.SyslogMessage).split(' ')[2]));
    }
  });

  it('TLS (gtls, RFC 5424 octet-counted) with a client certificate the listener requires', async () => {
    const r = await startRsyslog(RSYSLOGD ?? '', {
      global: `defaultNetstreamDriverCAFile="${fx.caFile}" defaultNetstreamDriverCertFile="${join(clientCertDir, 'client.crt')}" defaultNetstreamDriverKeyFile="${join(clientCertDir, 'client.key')}"`,
      action: `action(type="omfwd" target="127.0.0.1" port="${fx.port('tls')}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost")`,
    });
    senders.push(r);
    const lines = Array.from({ length: 20 }, (_, i) => `<${4 * 8 + 3}>Mar  2 11:00:00 bastion sshd[7${i}]: tls message ${i}`);
    await r.send(lines);
    const recs = await fx.records(SYSLOG_STREAM, 20, (x) => String(x.SyslogMessage).startsWith('tls message'));
    expect(recs.map((x) => x.SyslogMessage).sort()).toEqual(lines.map((_, i) => `tls message ${i}`).sort());
    for (const rec of recs) {
      expect(rec).toMatchObject({ Computer: 'bastion', HostIP: '127.0.0.1', Facility: 'auth', SeverityLevel: 'err', ProcessName: 'sshd' });
      expect(String(rec.ProcessID)).toMatch(/^7\d+$/);
    }
    expect(fx.emu.schemaViolations).toEqual([]);
  });

  it('refuses a TLS sender without a client certificate when one is required: counted, the listener goes on', async () => {
    const before = sampleSum(await fx.registry.metrics(), 'portcullis_syslog_connections_closed_total', { listener: 'tls', reason: 'tls_handshake' }) || 0;
    const outcome = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: fx.port('tls'), ca: readFileSync(fx.caFile), servername: 'localhost' }, () => {
        // TLS 1.3: the server's refusal of the missing certificate arrives after the client's handshake ends.
        s.write('<13>1 - - - - - - should never be kept\n');
      });
      s.on('error', (err: Error) => resolve(`error: ${err.message}`));
      s.on('close', () => resolve('closed'));
    });
    expect(outcome).toMatch(/certificate|closed|ECONNRESET|socket hang up/i);
    await expect
      .poll(async () => sampleSum(await fx.registry.metrics(), 'portcullis_syslog_connections_closed_total', { listener: 'tls', reason: 'tls_handshake' }))
      .toBe(before + 1);
    // Still serving: a message over plain TCP goes through.
    await (
      await startRsyslog(RSYSLOGD ?? '', { action: `action(type="omfwd" target="127.0.0.1" port="${fx.port('tcp')}" protocol="tcp")` }).then(
        (r) => (senders.push(r), r),
      )
    ).send(['<13>Mar  2 11:00:00 h after: still up']);
    await fx.records(SYSLOG_STREAM, 1, (r) => r.SyslogMessage === 'still up');
    const all = fx.emu.records().map((r) => JSON.stringify(r.record));
    expect(all.some((t) => t.includes('should never be kept'))).toBe(false);
  });
});

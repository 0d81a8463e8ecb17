/**
 * util-linux `logger` as the sender, over UDP, TCP (newline framing), TCP with octet counting and
 * RFC 5424 (structured data), and CEF lines: every message reaches the emulator in the Syslog /
 * CommonSecurityLog shape, field by field, and fits the tables' declared columns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { requireBinary, run } from '../helpers/system.js';
import { startSyslogFixture, CSL_STREAM, SYSLOG_STREAM, type SyslogFixture } from './fixture.js';
import { sampleSum as metricValue } from '../helpers/metrics.js';

const LOGGER = requireBinary('logger');

describe.skipIf(!LOGGER)('logger -> syslog collector -> Logs Ingestion (emulator)', () => {
  let fx: SyslogFixture;
  beforeAll(async () => {
    fx = await startSyslogFixture();
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  const send = async (args: string[], message: string): Promise<void> => {
    const r = await run(LOGGER ?? 'logger', [...args, message]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  };

  it('RFC 5424 over TCP with octet counting: every Syslog column, structured data kept', async () => {
    await send(
      [
        '--server',
        '127.0.0.1',
        '--port',
        String(fx.port('tcp')),
        '--tcp',
        '--octet-count',
        '--rfc5424',
        '-p',
        'auth.warning',
        '-t',
        'sshd',
        '--id=4242',
        '--sd-id',
        'origin@32473',
        '--sd-param',
        'ip="192.0.2.1"',
        '--msgid',
        'LOGIN',
      ],
      'tcp-5424 Failed password for root',
    );
    const [rec] = await fx.records(SYSLOG_STREAM, 1, (r) => String(r.SyslogMessage).includes('tcp-5424'));
    expect(rec).toMatchObject({
      Computer: hostname(),
      HostName: hostname(),
      HostIP: '127.0.0.1',
      Facility: 'auth',
      SeverityLevel: 'warning',
      ProcessName: 'sshd',
      ProcessID: 4242,
      SyslogMessage: expect.stringMatching(/^\[timeQuality [^\]]*\]\[origin@32473 ip="192\.0\.2\.1"\] tcp-5424 Failed password for root$/) as unknown,
      CollectorHostName: hostname(),
    });
    // logger's RFC 5424 timestamp (microseconds, local offset) read as the event's time.
    expect(Math.abs(Date.parse(String(rec?.EventTime)) - Date.now())).toBeLessThan(60_000);
    expect(Date.parse(String(rec?.TimeGenerated))).toBeGreaterThanOrEqual(Date.parse(String(rec?.EventTime)) - 1_000);
  });

  it('RFC 3164 over TCP with newline framing and over UDP', async () => {
    await send(
      ['--server', '127.0.0.1', '--port', String(fx.port('tcp')), '--tcp', '--rfc3164', '-p', 'local3.err', '-t', 'app3164'],
      'tcp-3164 disk almost full',
    );
    await send(['--server', '127.0.0.1', '--port', String(fx.port('udp')), '--udp', '--rfc3164', '-p', 'daemon.notice', '-t', 'udpd'], 'udp-3164 hello');
    await send(['--server', '127.0.0.1', '--port', String(fx.port('udp')), '--udp', '--rfc5424', '-p', 'user.debug', '-t', 'u5424'], 'udp-5424 hi');
    const all = await fx.records(SYSLOG_STREAM, 3, (r) => /tcp-3164|udp-3164|udp-5424/.test(String(r.SyslogMessage)));
    const by = (s: string): Record<string, unknown> | undefined => all.find((r) => String(r.SyslogMessage).endsWith(s));
    expect(by('tcp-3164 disk almost full')).toMatchObject({
      Facility: 'local3',
      SeverityLevel: 'err',
      ProcessName: 'app3164',
      Computer: hostname(),
      HostIP: '127.0.0.1',
    });
    expect(by('udp-3164 hello')).toMatchObject({ Facility: 'daemon', SeverityLevel: 'notice', ProcessName: 'udpd', HostIP: '127.0.0.1' });
    expect(by('udp-5424 hi')).toMatchObject({ Facility: 'user', SeverityLevel: 'debug', ProcessName: 'u5424' });
  });

  it('CEF over TCP: CommonSecurityLog columns, unknown keys in AdditionalExtensions', async () => {
    const cef =
      'CEF:0|Palo Alto Networks|PAN-OS|10.1.0|end|TRAFFIC|1|src=10.1.1.10 dst=203.0.113.5 spt=51234 dpt=443 act=allow suser=corp\\\\alice request=https://x.example/a?b\\=c PanOSRule=web';
    await send(['--server', '127.0.0.1', '--port', String(fx.port('tcp')), '--tcp', '--octet-count', '--rfc3164', '-p', 'local4.info', '-t', 'pan'], cef);
    const [rec] = await fx.records(CSL_STREAM, 1);
    expect(rec).toMatchObject({
      Computer: hostname(),
      DeviceVendor: 'Palo Alto Networks',
      DeviceProduct: 'PAN-OS',
      DeviceVersion: '10.1.0',
      DeviceEventClassID: 'end',
      Activity: 'TRAFFIC',
      LogSeverity: '1',
      SourceIP: '10.1.1.10',
      DestinationIP: '203.0.113.5',
      SourcePort: 51234,
      DestinationPort: 443,
      DeviceAction: 'allow',
      SourceUserName: 'corp\\alice',
      RequestURL: 'https://x.example/a?b=c',
      AdditionalExtensions: 'PanOSRule=web',
    });
  });

  it('counts per listener and format, records per stream; every record fits the declared columns', async () => {
    const text = await fx.registry.metrics();
    expect(metricValue(text, 'portcullis_syslog_messages_total', { listener: 'tcp', format: 'rfc5424' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'portcullis_syslog_messages_total', { listener: 'udp', format: 'rfc3164' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'portcullis_syslog_messages_total', { listener: 'tcp', format: 'cef' })).toBe(1);
    expect(metricValue(text, 'portcullis_syslog_records_total', { route: 'cef', destination: 'sentinel', stream: CSL_STREAM })).toBe(1);
    expect(fx.emu.schemaViolations).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSyslog } from '../../src/syslog/parse/syslog.js';
import { escapeHeader, escapeValue, parseCef } from '../../src/syslog/parse/cef.js';
import { runParse, type ParseTask, type RouteSpec } from '../../src/syslog/parse/task.js';
import { CEF_COLUMNS } from '../../src/syslog/parse/columns.js';

const NOW = new Date('2026-03-02T12:00:00Z');
const RECEIVED = '2026-03-02T12:00:00.000Z';
const CSL: RouteSpec = { table: 'CommonSecurityLog', facilities: null, cefVendor: null, cefProduct: null, dropFacilities: [], maxSeverity: 7 };
const SYSLOG: RouteSpec = { ...CSL, table: 'Syslog' };

function parseLines(
  lines: string[],
  routes: RouteSpec[] = [CSL, SYSLOG],
  sourceIp = '192.0.2.7',
): { records: Array<Array<Record<string, unknown>>>; task: ParseTask } & ReturnType<typeof runParse> {
  const task: ParseTask = {
    kind: 'syslog-parse',
    blocks: [{ mode: 'newline', bytes: Buffer.from(lines.map((l) => `${l}\n`).join('')), sourceIp, candidates: routes.map((_, i) => i) }],
    routes,
    receivedAt: RECEIVED,
    collector: 'gw-1',
    entryMaxBytes: 1_000_000,
  };
  const result = runParse(task);
  const records = routes.map((_, i) => {
    const out = result.outputs.find((o) => o.route === i);
    return out ? out.entries.flatMap((e) => JSON.parse(`[${Buffer.from(e.payload).toString('utf8')}]`) as Array<Record<string, unknown>>) : [];
  });
  return { ...result, records, task };
}

describe('RFC 5424', () => {
  it('reads every header field, the structured data and the message', () => {
    const p = parseSyslog(
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][x@1 a="q\\"uote\\]"] \uFEFFAn application event',
      NOW,
    );
    expect(p).toMatchObject({
      format: 'rfc5424',
      facility: 20,
      severity: 5,
      time: '2003-10-11T22:14:15.003Z',
      hostname: 'mymachine.example.com',
      appName: 'evntslog',
      procId: '1234',
      msgId: 'ID47',
      message: 'An application event',
      failure: null,
    });
    expect(p.sd).toEqual([
      {
        id: 'exampleSDID@32473',
        params: [
          ['iut', '3'],
          ['eventSource', 'Application'],
          ['eventID', '1011'],
        ],
      },
      { id: 'x@1', params: [['a', 'q"uote]']] },
    ]);
  });

  it('takes nil values and an absent message', () => {
    expect(parseSyslog('<13>1 - - - - - -', NOW)).toMatchObject({ format: 'rfc5424', time: null, hostname: null, appName: null, procId: null, message: '' });
  });

  it('keeps a malformed message whole as raw, counted as a failure', () => {
    for (const bad of [
      '<13>1 2003-10-11T22:14:15Z host app - - [unterminated a="b" msg',
      '<13>1 yesterday host app - - - msg',
      '<13>1 2003-10-11T22:14:15Z host',
    ]) {
      const p = parseSyslog(bad, NOW);
      expect(p.format).toBe('raw');
      expect(p.message).toBe(bad);
      expect(p.failure).not.toBeNull();
    }
  });
});

describe('RFC 3164 and its real-world deviations', () => {
  const y = NOW.getFullYear();
  it('reads the classic form', () => {
    expect(parseSyslog("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8", NOW)).toMatchObject({
      format: 'rfc3164',
      facility: 4,
      severity: 2,
      time: new Date(y - 1, 9, 11, 22, 14, 15).toISOString(), // October is in the future in March: last year
      hostname: 'mymachine',
      appName: 'su',
      procId: '230',
      message: "'su root' failed for lonvick on /dev/pts/8",
    });
  });
  it("reads a space-padded day, no hostname, a year, milliseconds, Cisco's colon, an ISO timestamp", () => {
    expect(parseSyslog('<13>Mar  2 11:00:00 sshd[77]: Accepted publickey', NOW)).toMatchObject({
      hostname: null,
      appName: 'sshd',
      procId: '77',
      message: 'Accepted publickey',
    });
    expect(parseSyslog('<13>Mar  2 2025 11:00:00 host app: m', NOW).time).toBe(new Date(2025, 2, 2, 11, 0, 0).toISOString());
    expect(parseSyslog('<187>Mar  1 18:46:11.123: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down', NOW)).toMatchObject({
      time: new Date(y, 2, 1, 18, 46, 11, 123).toISOString(),
      hostname: null,
      appName: '%LINK-3-UPDOWN',
      message: 'Interface Gi0/1, changed state to down',
    });
    expect(parseSyslog('<30>2026-03-02T10:00:00.5+01:00 web01 nginx: started', NOW)).toMatchObject({
      time: '2026-03-02T09:00:00.500Z',
      hostname: 'web01',
      appName: 'nginx',
    });
  });
  it('reads a message with no timestamp and no tag', () => {
    expect(parseSyslog('<13>just text', NOW)).toMatchObject({ format: 'rfc3164', time: null, hostname: null, appName: null, message: 'just text' });
  });
  it('keeps a line with no PRI or a bad one as raw', () => {
    expect(parseSyslog('hello', NOW)).toMatchObject({ format: 'raw', message: 'hello', failure: null });
    expect(parseSyslog('<999>x', NOW)).toMatchObject({ format: 'raw', message: '<999>x', failure: 'bad PRI' });
  });
});

describe('CEF escaping (properties)', () => {
  const text = fc.string({ unit: 'grapheme', maxLength: 30 });
  const key = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9]{0,15}$/);
  it('reads back any header field and extension value written with the escaping rules', () => {
    fc.assert(
      fc.property(
        fc.array(text, { minLength: 6, maxLength: 6 }),
        fc.uniqueArray(fc.tuple(key, text), { selector: (t) => t[0], maxLength: 8 }),
        (header, ext) => {
          const [vendor = '', product = '', version = '', sig = '', name = '', sev = ''] = header;
          const line = `CEF:0|${[vendor, product, version, sig, name, sev].map(escapeHeader).join('|')}|${ext.map(([k, v]) => `${k}=${escapeValue(v)}`).join(' ')}`;
          const cef = parseCef(line);
          expect(cef).not.toBeNull();
          expect([cef?.vendor, cef?.product, cef?.deviceVersion, cef?.signatureId, cef?.name, cef?.severity]).toEqual(header);
          // Values lose trailing spaces (they separate pairs) and CR/LF come back as LF/CR escapes' meaning.
          const expected = ext.map(([k, v]) => [k, v.replace(/\r\n/g, '\n').replace(/ +$/, '')]);
          expect([...(cef?.extensions ?? new Map()).entries()]).toEqual(expected);
        },
      ),
    );
  });

  it('unescapes \\| \\= \\\\ \\n in values and \\| \\\\ in the header', () => {
    const cef = parseCef('CEF:0|a\\|b|c\\\\d|1|2|n|3|k=x\\=y\\\\z\\nw\\|v other=1');
    expect(cef).toMatchObject({ vendor: 'a|b', product: 'c\\d' });
    expect(cef?.extensions.get('k')).toBe('x=y\\z\nw|v');
    expect(cef?.extensions.get('other')).toBe('1');
  });

  it('refuses a header with fewer than seven fields or an unknown version', () => {
    expect(parseCef('CEF:0|a|b|c|d|e')).toBeNull();
    expect(parseCef('CEF:2|a|b|c|d|e|f|')).toBeNull();
  });
});

interface CorpusEntry {
  vendor: string;
  kind: string;
  line: string;
  expected: Record<string, unknown>;
  additionalExtensionsContain?: string[];
}

describe('CEF corpus of vendor formats -> CommonSecurityLog columns', () => {
  const corpus = JSON.parse(readFileSync(new URL('./corpus/cef-vendors.json', import.meta.url), 'utf8')) as CorpusEntry[];
  it('has firewall, web proxy and IDS samples of several vendors', () => {
    expect(new Set(corpus.map((c) => c.vendor)).size).toBeGreaterThanOrEqual(5);
  });
  for (const c of corpus) {
    it(`${c.vendor}: ${c.kind}`, () => {
      const { records, counts } = parseLines([c.line]);
      expect(counts).toMatchObject({ messages: 1, cef: 1, parseFailures: 0 });
      const [rec] = records[0] ?? [];
      expect(rec).toMatchObject({ TimeGenerated: RECEIVED, CollectorHostName: 'gw-1', ...c.expected });
      const extra = typeof rec?.AdditionalExtensions === 'string' ? rec.AdditionalExtensions.split(';') : [];
      for (const pair of c.additionalExtensionsContain ?? []) expect(extra).toContain(pair);
      // A key of the published mapping is in AdditionalExtensions only when its value does not fit the column's type.
      const leftover = extra.map((p) => p.slice(0, p.indexOf('='))).filter((k) => CEF_COLUMNS.has(k));
      expect(leftover).toEqual(c.line.includes('spt=notaport') ? ['spt'] : []);
    });
  }
});

describe('mapping to the Syslog table, routing and filters', () => {
  it('fills the Syslog columns', () => {
    const { records } = parseLines(['<86>1 2026-03-02T11:59:58.123Z web01 sshd 4242 - - Accepted password for alice'], [SYSLOG]);
    expect(records[0]).toEqual([
      {
        TimeGenerated: RECEIVED,
        EventTime: '2026-03-02T11:59:58.123Z',
        Computer: 'web01',
        HostName: 'web01',
        HostIP: '192.0.2.7',
        Facility: 'authpriv',
        SeverityLevel: 'info',
        ProcessName: 'sshd',
        ProcessID: 4242,
        SyslogMessage: 'Accepted password for alice',
        CollectorHostName: 'gw-1',
      },
    ]);
  });

  it('keeps an unparseable line as a raw Syslog record (the sender address as Computer), counted', () => {
    const { records, counts } = parseLines(['<13>1 garbage', 'CEF:0|only|three'], [CSL, SYSLOG]);
    expect(counts).toMatchObject({ messages: 2, raw: 2, parseFailures: 2 });
    expect(records[1]?.map((r) => [r.SyslogMessage, r.Computer])).toEqual([
      ['<13>1 garbage', '192.0.2.7'],
      ['CEF:0|only|three', '192.0.2.7'],
    ]);
  });

  it('keeps invalid UTF-8 (replaced), counted', () => {
    const task: ParseTask = {
      kind: 'syslog-parse',
      blocks: [
        {
          mode: 'newline',
          bytes: Buffer.concat([Buffer.from('<13>bad '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' bytes\n')]),
          sourceIp: '::1',
          candidates: [0],
        },
      ],
      routes: [SYSLOG],
      receivedAt: RECEIVED,
      collector: 'gw',
      entryMaxBytes: 10_000,
    };
    const r = runParse(task);
    expect(r.counts.invalidUtf8).toBe(1);
    expect((JSON.parse(Buffer.from(r.outputs[0]?.entries[0]?.payload ?? []).toString()) as { SyslogMessage: string }).SyslogMessage).toBe(
      'bad \uFFFD\uFFFD\uFFFD bytes',
    );
  });

  it('routes by CEF vendor and facility, first match wins; filters drop by facility and severity; unmatched is counted', () => {
    const routes: RouteSpec[] = [
      { ...CSL, cefVendor: 'fortinet' },
      { ...SYSLOG, facilities: [4, 10], maxSeverity: 4 },
      { ...SYSLOG, facilities: [16], dropFacilities: [16] },
    ];
    const { records, counts } = parseLines(
      [
        '<134>CEF:0|Fortinet|Fortigate|7|1|x|3|src=1.2.3.4',
        '<13>CEF:0|Other|P|1|1|x|3|src=1.2.3.4',
        '<36>Mar  2 11:00:00 h su: warning kept',
        '<38>Mar  2 11:00:00 h su: info dropped',
        '<134>Mar  2 11:00:00 h app: local0 dropped',
        '<13>Mar  2 11:00:00 h app: user unrouted',
      ],
      routes,
    );
    expect(records[0]?.map((r) => r.DeviceVendor)).toEqual(['Fortinet']);
    expect(records[1]?.map((r) => r.SyslogMessage)).toEqual(['warning kept']);
    expect(records[2]).toEqual([]);
    expect(counts).toMatchObject({ messages: 6, filtered: 2, unrouted: 2 });
  });

  /** One newline-framed block of `lines` from 10.0.0.1, routed to the Syslog table. */
  const linesTask = (lines: string[], sizes: Pick<ParseTask, 'entryMaxBytes' | 'entryTargetBytes'>): ParseTask => ({
    kind: 'syslog-parse',
    blocks: [{ mode: 'newline', bytes: Buffer.from(lines.join('\n')), sourceIp: '10.0.0.1', candidates: [0] }],
    routes: [SYSLOG],
    receivedAt: RECEIVED,
    collector: 'gw',
    ...sizes,
  });

  it('closes entries past entryTargetBytes, and keeps a record larger than the target whole', () => {
    const lines = Array.from({ length: 40 }, (_, i) => `<13>Mar  2 11:00:00 h app: message number ${i} ${'x'.repeat(i === 7 ? 3_000 : 100)}`);
    const task = linesTask(lines, { entryMaxBytes: 100_000, entryTargetBytes: 1_000 });
    const out = runParse(task).outputs[0];
    const entries = out?.entries ?? [];
    expect(out?.records).toBe(40);
    // The long record is an entry of its own, past the target and not cut; the others stay within it.
    const big = entries.filter((e) => e.payload.byteLength > 1_000);
    expect(big.map((e) => e.records)).toEqual([1]);
    expect(entries.length).toBeGreaterThan(8);
    const all = entries.flatMap((e) => JSON.parse(`[${Buffer.from(e.payload).toString()}]`) as Array<{ SyslogMessage: string }>);
    expect(all.map((r) => r.SyslogMessage)).toEqual(lines.map((l) => l.slice('<13>Mar  2 11:00:00 h app: '.length)));
    expect(runParse(task).counts.oversized).toBe(0);
  });

  it('cuts entries at entryMaxBytes on record boundaries', () => {
    const lines = Array.from({ length: 50 }, (_, i) => `<13>Mar  2 11:00:00 h app: message number ${i} ${'x'.repeat(100)}`);
    const task = linesTask(lines, { entryMaxBytes: 2_000 });
    const out = runParse(task).outputs[0];
    expect(out?.records).toBe(50);
    expect(out?.entries.length).toBeGreaterThan(1);
    for (const e of out?.entries ?? []) expect(e.payload.byteLength).toBeLessThanOrEqual(2_000);
    const all = (out?.entries ?? []).flatMap((e) => JSON.parse(`[${Buffer.from(e.payload).toString()}]`) as Array<{ SyslogMessage: string }>);
    expect(all.map((r) => r.SyslogMessage)).toEqual(lines.map((l) => l.slice('<13>Mar  2 11:00:00 h app: '.length)));
  });
});

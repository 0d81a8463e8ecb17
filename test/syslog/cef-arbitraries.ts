/**
 * fast-check arbitraries for the syslog fast paths' agreement tests (fast-paths.unit.test.ts: the
 * JavaScript byte path; native-cef.unit.test.ts: the C one): CEF messages whose headers, fields,
 * versions, keys and values sit on every rule the paths decide by, and route sets that take and
 * refuse them; and the parse both tests compare.
 */
import fc from 'fast-check';
import { runParse, type RouteSpec } from '../../src/syslog/parse/task.js';
import type { FramingMode } from '../../src/syslog/framing.js';

export const CSL: RouteSpec = { table: 'CommonSecurityLog', facilities: null, cefVendor: null, cefProduct: null, dropFacilities: [], maxSeverity: 7 };
export const SYSLOG: RouteSpec = { ...CSL, table: 'Syslog' };

const pri = fc.constantFrom('<14>', '<134>', '<0>', '<191>', '<192>', '<01>', '<1x>', '', '<13>');
const header = fc.constantFrom(
  'Mar  1 10:15:30 fw ',
  'Mar 01 10:15:30 fw-1.corp ',
  'Dec 31 2025 23:59:59 host ',
  'Mar  1 10:15:30.123 UTC: host ',
  'Mar  1 10:15:30 UTC host ',
  'Mar  1 10:15:30 ABCDE ',
  'Mar  1 10:15:30 FGT ',
  'Mar  1 10:15:30 ABCD ',
  'Mar  1 10:15:30 ABCD fw ',
  'Foo  1 10:15:30 fw ',
  'Mar  1 10:15:30 host: ',
  'Mar  1 10:15:30 sshd[12]: ',
  'Mar  1 10:15:30 ',
  '2026-03-02T10:15:30Z fw ',
  '1 2026-03-02T10:15:30.5Z cp-mgmt CheckPoint 123 - - ',
  '1 - - - - - - ',
  '1 2026-02-30T10:15:30Z h a p m - ',
  '1 2026-03-02T10:15:30Z h "q" p m - ',
  '1 2026-03-02T10:15:30Z h\\x"y a p m - ',
  '1 2026-03-02T10:15:30Z h  p m - ',
  '1 2026-03-02T10:15:30Z h a p m [x a="1"] ',
  '1 not-a-time h a p m - ',
  '1 2026-02-31T10:15:30Z h a p m - ',
  '1 2026-03-02T24:00:00Z h a p m - ',
  '1 2026-03-02T10:15:30.123456789+05:30 h a p m - ',
  '1 2026-03-02T10:15:30.1234567890Z h a p m - ',
  '1 2026-03-02T10:15:30 h a p m - ',
  '1 0000-01-01T00:00:00Z h a p m - ',
  '1 2026-13-01T00:00:00Z h a p m - ',
  '1 2026-03-02t10:15:30z h a p m - ',
  'Mar  1 2026 10:15:30.1234567 fw ',
  'Mar 1 10:15:30 fw ',
  'Mar   1 10:15:30 fw ',
  'Mar 123 10:15:30 fw ',
  'Mar  1 10:15:30ABC fw ',
  'Mar  1 10:15:30 ABC: fw ',
  'Mar  1 10:15:30. fw ',
  'Mar  1 10:15:30.123456 PDT fw ',
  '',
  'tag: ',
);
const field = fc.oneof(fc.constantFrom('Palo Alto', 'PAN-OS', '10.1', 'x\\|y', 'a\\\\b', 'q"q', '', ' 1 ', 'é'), fc.string({ maxLength: 6 }));
const version = fc.constantFrom('0', '1', '2', ' 0 ', '00', 'x', '');
const key = fc.constantFrom(
  'src',
  'dst',
  'spt',
  'dpt',
  'in',
  'out',
  'cnt',
  'rt',
  'act',
  'cs1',
  'cs1Label',
  'cfp1',
  'start',
  'suser',
  'request',
  'vendorKey',
  'x_y',
  'k[0]',
  // Long keys, and unknown ones that share a known key's length, first byte and last 8 bytes or
  // its first 7: native/cef.c finds a key by those before it compares the rest.
  'destinationTranslatedAddress',
  'dXstinationTranslatedAddress',
  'deviceExternalId',
  'cs1Labe',
  's',
);
const value = fc.oneof(
  fc.constantFrom(
    '10.0.0.1',
    '443',
    '-0',
    '007',
    '-2147483648',
    '2147483648',
    '99999999999',
    '9007199254740993',
    'a b',
    '',
    'x\\=y',
    'p\\|q',
    'c:\\\\dir',
    'end\\',
    'l1\\nl2',
    'tab\\t',
    '"q"',
    'ü',
    '\u0001',
  ),
  fc.string({ maxLength: 10 }),
);
const ext = fc
  .tuple(fc.array(fc.tuple(key, value), { maxLength: 10 }), fc.constantFrom(' ', '  '))
  .map(([pairs, sep]) => pairs.map(([k, v]) => `${k}=${v}`).join(sep));
/** One message (no LF): PRI, header, CEF header and extension, and what some senders end a line with. */
export const cefMessage = fc
  .tuple(pri, header, version, fc.array(field, { minLength: 6, maxLength: 7 }), ext, fc.constantFrom('', '\r', ' ', '\u0000'))
  .map(([p, h, v, fields, e, tail]) => `${p}${h}CEF:${v}|${fields.join('|')}|${e}${tail}`);
/** Route lists: the plain CommonSecurityLog route, and routes by facility, by vendor, filters, a Syslog route first. */
export const routeSets = fc.constantFrom<RouteSpec[]>(
  [CSL],
  [{ ...CSL, facilities: [1] }, SYSLOG],
  [{ ...CSL, dropFacilities: [16], maxSeverity: 5 }],
  [{ ...CSL, cefVendor: 'palo alto' }, CSL],
  [SYSLOG, CSL],
  [{ ...CSL, facilities: [3] }],
);

/**
 * runParse over one block from 192.0.2.7 (every route a candidate), `opts` choosing the paths
 * (`fast: false` the plain parser only, `native: false` without the C path), as a value to
 * compare: the counts, and each route's entries as text.
 */
export function parsedBlock(
  bytes: Uint8Array,
  mode: FramingMode,
  routes: RouteSpec[],
  entryMaxBytes: number,
  opts: { fast?: boolean; native?: boolean },
  entryTargetBytes?: number,
) {
  const r = runParse(
    {
      kind: 'syslog-parse',
      blocks: [{ mode, bytes: Buffer.from(bytes), sourceIp: '192.0.2.7', candidates: routes.map((_, i) => i) }],
      routes,
      receivedAt: '2026-03-02T12:00:00.000Z',
      collector: 'gw-1',
      entryMaxBytes,
      ...(entryTargetBytes === undefined ? {} : { entryTargetBytes }),
    },
    opts,
  );
  return {
    counts: r.counts,
    outputs: r.outputs.map((o) => ({ route: o.route, records: o.records, entries: o.entries.map((e) => [e.records, Buffer.from(e.payload).toString()]) })),
  };
}

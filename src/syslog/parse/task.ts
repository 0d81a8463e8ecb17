/**
 * The pool side of the collector: blocks of framed messages -> parsed, filtered, routed, mapped
 * to Syslog / CommonSecurityLog records -> spool entries (JSON records joined by ',', each entry
 * at most entryMaxBytes) per route, plus counts. Pure and synchronous: it runs in a pool thread
 * (parse-worker.ts), and unit tests call it directly.
 */
import { splitBlock, type FramingMode } from '../framing.js';
import { parseSyslog, type ParsedSyslog } from './syslog.js';
import { cefEvent, parseCefPairs, type CefEvent, type CefHeader, type CefPairs } from './cef.js';
import { CEF_COLUMNS, typed, type ColumnType } from './columns.js';
import { SYSLOG_FACILITIES, SYSLOG_SEVERITIES } from '../../config/syslog-checks.js';
import { EntryBuilder, type SealEntry } from './entries.js';
import { CefFastPath, FAST_DECLINED, FAST_FILTERED, FAST_UNROUTED } from './fast.js';
import {
  nativeCef,
  R_FILTERED,
  R_IN_ENTRY,
  R_MESSAGES,
  R_MSG_END,
  R_MSG_START,
  R_OUT_LEN,
  R_POS,
  R_RECORDS,
  R_STATUS,
  RESULT_SLOTS,
  S_DECLINED,
  S_DONE,
  S_FULL,
} from './native.js';

export type Table = 'Syslog' | 'CommonSecurityLog';

/** A route as the pool thread needs it (listener and CIDR are decided before, on the main thread). */
export interface RouteSpec {
  table: Table;
  /** Facility codes the route takes (null = any). */
  facilities: number[] | null;
  /** Lower case; null = any. */
  cefVendor: string | null;
  cefProduct: string | null;
  dropFacilities: number[];
  /** Messages with a severity number above this are dropped (7 = keep all). */
  maxSeverity: number;
}

export interface ParseBlock {
  mode: FramingMode;
  bytes: Uint8Array;
  /** The sender's address (HostIP; Computer when the message names no host). */
  sourceIp: string;
  /** Indices into ParseTask.routes that this block's listener and source may use, in order. */
  candidates: number[];
}

export interface ParseTask {
  kind: 'syslog-parse';
  blocks: ParseBlock[];
  routes: RouteSpec[];
  /** ISO receive time: TimeGenerated. */
  receivedAt: string;
  /** This gateway's host name: CollectorHostName. */
  collector: string;
  /** A record's JSON is cut to fit this (the upstream batch limit). */
  entryMaxBytes: number;
  /** Entries close past this size (default entryMaxBytes): see EntryBuilder. */
  entryTargetBytes?: number;
  /**
   * Set: the pool thread hands each entry back as a deflate run at this level (forwarder
   * pool/gzip.ts deflateRun), spooled compressed and stitched into batches (worker.ts).
   */
  deflateLevel?: number;
}

export interface ParseCounts {
  messages: number;
  rfc5424: number;
  rfc3164: number;
  cef: number;
  raw: number;
  /** Messages that looked like a format but failed it (kept as raw Syslog records). */
  parseFailures: number;
  invalidUtf8: number;
  filtered: number;
  unrouted: number;
  /** Records longer than an entry may be (cut to fit; counted). */
  oversized: number;
}

export interface ParseOutput {
  route: number;
  records: number;
  /** deflated: the payload is a deflate run of the records (ParseTask.deflateLevel). */
  entries: Array<{ records: number; payload: Uint8Array; deflated?: boolean }>;
}

export interface ParseResult {
  outputs: ParseOutput[];
  counts: ParseCounts;
}

export function emptyCounts(): ParseCounts {
  return { messages: 0, rfc5424: 0, rfc3164: 0, cef: 0, raw: 0, parseFailures: 0, invalidUtf8: 0, filtered: 0, unrouted: 0, oversized: 0 };
}

const nativeResult = new Float64Array(RESULT_SLOTS);

/**
 * The route every CEF message of a block takes when it is the native path's to write: the first
 * candidate, a CommonSecurityLog route that asks nothing of the message (facility, vendor,
 * product); else -1 (the block's messages are routed one by one).
 */
function nativeRoute(routes: RouteSpec[], candidates: number[]): number {
  for (const i of candidates) {
    const r = routes[i];
    if (!r) continue;
    return r.table === 'CommonSecurityLog' && r.facilities === null && r.cefVendor === null && r.cefProduct === null ? i : -1;
  }
  return -1;
}

/**
 * `fast: false` parses every message the plain way; `native: false` leaves out the C path (the
 * JavaScript fast path and the plain one still run). Tests compare them. `seal` turns each entry's
 * JSON into its payload (worker.ts deflates it); by default the payload is the JSON.
 */
export function runParse(task: ParseTask, opts: { fast?: boolean; native?: boolean; seal?: SealEntry } = {}): ParseResult {
  const counts = emptyCounts();
  const builders = new Map<number, EntryBuilder>();
  const builderFor = (route: number): EntryBuilder => {
    let b = builders.get(route);
    if (!b) builders.set(route, (b = new EntryBuilder(task.entryMaxBytes, task.entryTargetBytes, opts.seal)));
    return b;
  };
  const now = new Date(task.receivedAt);
  const fast = opts.fast === false ? null : new CefFastPath(task.receivedAt, task.collector);
  for (const block of task.blocks) {
    const buf = Buffer.from(block.bytes.buffer, block.bytes.byteOffset, block.bytes.byteLength);
    const sourceJson = CefFastPath.sourceJson(block.sourceIp);
    const each = (start: number, end: number): void => {
      // Trailing CR (CRLF senders) and NUL (some appliances terminate with it) are not message text.
      while (end > start && (buf[end - 1] === 0x0d || buf[end - 1] === 0x00)) end--;
      if (end === start) return;
      counts.messages++;
      if (fast) {
        const r = fast.write(buf, start, end, sourceJson, task.routes, block.candidates, builderFor);
        if (r !== FAST_DECLINED) {
          counts.cef++;
          if (r === FAST_UNROUTED) counts.unrouted++;
          else if (r === FAST_FILTERED) counts.filtered++;
          return;
        }
      }
      let text = buf.toString('utf8', start, end);
      if (text.includes('\uFFFD') && Buffer.byteLength(text) !== end - start) counts.invalidUtf8++;
      if (text.length > 0 && text.charCodeAt(text.length - 1) === 0x0a) text = text.slice(0, -1);
      const parsed = parseSyslog(text, now);
      const cef = parsed.message.startsWith('CEF:') ? parseCefPairs(parsed.message) : null;
      if (parsed.failure || (parsed.message.startsWith('CEF:') && !cef)) counts.parseFailures++;
      if (cef) counts.cef++;
      else counts[parsed.format]++;
      const route = pickRoute(task.routes, block.candidates, parsed, cef);
      if (route < 0) {
        counts.unrouted++;
        return;
      }
      const spec = task.routes[route] as RouteSpec;
      if ((parsed.facility >= 0 && spec.dropFacilities.includes(parsed.facility)) || parsed.severity > spec.maxSeverity) {
        counts.filtered++;
        return;
      }
      const csl = spec.table === 'CommonSecurityLog' ? cef : null;
      let json = csl
        ? (cslJson(parsed, csl, block.sourceIp, task) ?? JSON.stringify(cslRecord(parsed, cefEvent(csl), block.sourceIp, task)))
        : JSON.stringify(syslogRecord(parsed, block.sourceIp, task));
      // A UTF-16 unit is at most 3 UTF-8 bytes: only a long record is measured.
      if (json.length * 3 > task.entryMaxBytes && Buffer.byteLength(json) > task.entryMaxBytes) {
        counts.oversized++;
        const record = csl ? cslRecord(parsed, cefEvent(csl), block.sourceIp, task) : syslogRecord(parsed, block.sourceIp, task);
        json = JSON.stringify(shrink(record, task.entryMaxBytes));
      }
      builderFor(route).addString(json);
    };
    const route = fast && nativeCef && opts.native !== false ? nativeRoute(task.routes, block.candidates) : -1;
    if (route < 0 || !fast || !nativeCef) {
      splitBlock(block.mode, buf, each);
      continue;
    }
    // The C path writes the block's CEF messages into the route's entries; each message it
    // declines goes through `each` (fast.ts, then the plain way), in order.
    const spec = task.routes[route] as RouteSpec;
    let dropMask = 0;
    for (const f of spec.dropFacilities) if (f >= 0 && f < 32) dropMask |= 1 << f;
    const b = builderFor(route);
    const r = nativeResult;
    let pos = 0;
    for (;;) {
      nativeCef.writeBlock(
        buf,
        pos,
        buf.length,
        block.mode === 'newline',
        b.buf,
        b.len,
        b.inEntry,
        // The C path's entry bound is the target: it closes entries there, and declines a record
        // larger than that to fast.ts, which takes it whole up to b.max.
        b.target,
        fast.prefixJson,
        fast.collectorJson,
        sourceJson,
        dropMask >>> 0,
        spec.maxSeverity,
        r,
      );
      b.wrote(r[R_OUT_LEN] as number, r[R_IN_ENTRY] as number, r[R_RECORDS] as number);
      counts.messages += r[R_MESSAGES] as number;
      counts.cef += r[R_MESSAGES] as number;
      counts.filtered += r[R_FILTERED] as number;
      pos = r[R_POS] as number;
      const status = r[R_STATUS];
      if (status === S_DONE) break;
      if (status === S_DECLINED) each(r[R_MSG_START] as number, r[R_MSG_END] as number);
      else if (status === S_FULL) b.closeEntry();
      else {
        const from = pos; // S_REST: frames the C path does not read
        splitBlock(block.mode, buf.subarray(from), (s, e) => each(from + s, from + e));
        break;
      }
    }
  }
  // By route: the native path may open a route's builder before a message of another route comes.
  const outputs: ParseOutput[] = [];
  for (const [route, b] of [...builders].sort((x, y) => x[0] - y[0])) {
    b.finish();
    if (b.records > 0) outputs.push({ route, records: b.records, entries: b.entries });
  }
  return { outputs, counts };
}

function pickRoute(routes: RouteSpec[], candidates: number[], p: ParsedSyslog, cef: CefHeader | null): number {
  for (const i of candidates) {
    const r = routes[i];
    if (!r) continue;
    if (r.table === 'CommonSecurityLog' && !cef) continue;
    if (r.facilities && !r.facilities.includes(p.facility)) continue;
    if (r.cefVendor !== null && cef?.vendor.toLowerCase() !== r.cefVendor) continue;
    if (r.cefProduct !== null && cef?.product.toLowerCase() !== r.cefProduct) continue;
    return i;
  }
  return -1;
}

function facilityName(n: number): string | undefined {
  return n >= 0 ? SYSLOG_FACILITIES[n] : undefined;
}

function severityName(n: number): string | undefined {
  return n >= 0 ? SYSLOG_SEVERITIES[n] : undefined;
}

/** The Syslog table's columns. */
export function syslogRecord(p: ParsedSyslog, sourceIp: string, task: Pick<ParseTask, 'receivedAt' | 'collector'>): Record<string, unknown> {
  const pid = p.procId !== null && /^[0-9]{1,10}$/.test(p.procId) ? Number(p.procId) : undefined;
  const rec: Record<string, unknown> = {
    TimeGenerated: task.receivedAt,
    EventTime: p.time ?? task.receivedAt,
    Computer: p.hostname ?? sourceIp,
    HostName: p.hostname ?? sourceIp,
    HostIP: sourceIp,
    Facility: facilityName(p.facility),
    SeverityLevel: severityName(p.severity),
    ProcessName: p.appName ?? undefined,
    ProcessID: pid,
    // Structured data has no column of its own: it leads the message, as sent.
    SyslogMessage: p.sdText ? (p.message ? `${p.sdText} ${p.message}` : p.sdText) : p.message,
    CollectorHostName: task.collector,
  };
  return rec;
}

/** The CommonSecurityLog table's columns: the CEF header, mapped extension keys, the rest in AdditionalExtensions. */
export function cslRecord(p: ParsedSyslog, cef: CefEvent, sourceIp: string, task: Pick<ParseTask, 'receivedAt' | 'collector'>): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    TimeGenerated: task.receivedAt,
    Computer: p.hostname ?? sourceIp,
    CollectorHostName: task.collector,
    DeviceVendor: cef.vendor,
    DeviceProduct: cef.product,
    DeviceVersion: cef.deviceVersion,
    DeviceEventClassID: cef.signatureId,
    Activity: cef.name,
    LogSeverity: cef.severity,
  };
  const extra: string[] = [];
  for (const [key, value] of cef.extensions) {
    const col = CEF_COLUMNS.get(key);
    const v = col ? typed(col[1], value) : undefined;
    if (col && v !== undefined) rec[col[0]] = v;
    else extra.push(`${key}=${value}`);
  }
  if (extra.length) rec.AdditionalExtensions = extra.join(';');
  return rec;
}

/** Each mapped extension key -> the JSON of its column's name with the separator before it, its type, and a number for the column. */
const CEF_JSON_KEYS: ReadonlyMap<string, readonly [string, ColumnType, number]> = new Map(
  [...CEF_COLUMNS].map(([key, [col, type]], i) => [key, [`,${JSON.stringify(col)}:`, type, i]] as const),
);
/** Characters JSON must escape (controls, quote, backslash) and surrogates (escaped when lone). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON.stringify(s) for a string, without the call when there is nothing to escape (most values). */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** Per mapped column, the number of the record that last wrote it (a repeated key is seen without a Set). */
const columnWrittenBy = new Float64Array(CEF_COLUMNS.size);
let recordNumber = 0;

/**
 * JSON.stringify(cslRecord(p, cefEvent(cef), ...)), written directly: the same text, without a
 * Map of the extension and an object whose shape differs per vendor (most of the pool's time went
 * into making and stringifying those). Each column once, in the same order: CEF_COLUMNS maps no
 * two keys to one column and no key to a header column (a unit test holds it to that). null when a
 * key repeats (rare): the caller takes the Map's first-place-last-value way then.
 */
export function cslJson(p: ParsedSyslog, cef: CefPairs, sourceIp: string, task: Pick<ParseTask, 'receivedAt' | 'collector'>): string | null {
  const me = ++recordNumber;
  let out =
    `{"TimeGenerated":${quote(task.receivedAt)},"Computer":${quote(p.hostname ?? sourceIp)},` +
    `"CollectorHostName":${quote(task.collector)},"DeviceVendor":${quote(cef.vendor)},"DeviceProduct":${quote(cef.product)},` +
    `"DeviceVersion":${quote(cef.deviceVersion)},"DeviceEventClassID":${quote(cef.signatureId)},"Activity":${quote(cef.name)},` +
    `"LogSeverity":${quote(cef.severity)}`;
  let extra = '';
  let unmapped: string[] | null = null;
  const pairs = cef.pairs;
  for (let k = 0; k + 1 < pairs.length; k += 2) {
    const key = pairs[k] as string;
    const value = pairs[k + 1] as string;
    const col = CEF_JSON_KEYS.get(key);
    if (col) {
      if (columnWrittenBy[col[2]] === me) return null;
      columnWrittenBy[col[2]] = me;
      const v = typed(col[1], value);
      if (v !== undefined) {
        out += col[0] + (typeof v === 'number' ? String(v) : quote(v));
        continue;
      }
    } else {
      if (unmapped?.includes(key)) return null;
      (unmapped ??= []).push(key);
    }
    extra += extra === '' ? `${key}=${value}` : `;${key}=${value}`;
  }
  if (extra !== '') out += `,"AdditionalExtensions":${quote(extra)}`;
  return out + '}';
}

/** A record too large for one upstream batch: its longest string values are cut until it fits. */
function shrink(rec: Record<string, unknown>, max: number): Record<string, unknown> {
  const out = { ...rec };
  for (;;) {
    const size = Buffer.byteLength(JSON.stringify(out));
    if (size <= max) return out;
    let longest: string | null = null;
    for (const [k, v] of Object.entries(out)) if (typeof v === 'string' && (longest === null || v.length > (out[longest] as string).length)) longest = k;
    // Nothing left to cut (only an entry smaller than a record's column names gets here): as it is.
    if (longest === null || (out[longest] as string).length === 0) return out;
    const v = out[longest] as string;
    out[longest] = v.slice(0, Math.max(0, v.length - (size - max) - 16));
  }
}

/**
 * The byte fast path for the usual CEF message: `<PRI>` + an RFC 3164 timestamp and host (or an
 * RFC 5424 header with no structured data, or nothing) + `CEF:` + a header without backslashes,
 * printable ASCII only, routed to CommonSecurityLog. It reads the message's bytes and writes the
 * record's JSON straight into the entry buffer: no string per field, no object, no join, no
 * encode (the plain path spent ~20 µs a message on those; this one a few).
 *
 * It gives exactly the bytes the plain path gives (parseSyslog + parseCefPairs + cslJson, the
 * same counts and route) or declines: anything else (a backslash in the header, a repeated key,
 * a real or datetime column, a tag before CEF:, structured data, non-ASCII or control bytes, a
 * long line, a route on vendor or product, a Syslog-table route) goes the plain way.
 * test/syslog/fast-paths.unit.test.ts holds the two to the same output.
 */
import { CEF_COLUMNS, type ColumnType } from './columns.js';
import { isKeyChar } from './cef.js';
import { MONTHS, TS_3164 } from './syslog.js';
import type { EntryBuilder } from './entries.js';
import type { RouteSpec } from './task.js';

/** Longer messages go the plain way; bounds what one record may write past the entry (RECORD_HEADROOM). */
export const FAST_MAX_LINE = 8 * 1024;

export const FAST_DECLINED = -1;
export const FAST_UNROUTED = -2;
export const FAST_FILTERED = -3;

const enc = new TextEncoder();
const BS = 0x5c;
const QUOTE = 0x22;
const SP = 0x20;
const EQ = 0x3d;
const BAR = 0x7c;

const TYPE_STRING = 0;
const TYPE_INT = 1;
const TYPE_LONG = 2;
const TYPE_OTHER = 3; // real, datetime: the plain way
const typeCode = (t: ColumnType): number => (t === 'string' ? TYPE_STRING : t === 'int' ? TYPE_INT : t === 'long' ? TYPE_LONG : TYPE_OTHER);

/** The mapped keys in an open-addressed table keyed by a hash of their bytes. */
const TABLE_BITS = 10;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
const slotKey = new Int32Array(1 << TABLE_BITS).fill(-1);
const keyBytes: Uint8Array[] = [];
const keyColumnJson: Uint8Array[] = [];
const keyType: number[] = [];

function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h >>> 0;
}

for (const [key, [column, type]] of CEF_COLUMNS) {
  const k = keyBytes.length;
  const bytes = enc.encode(key);
  keyBytes.push(bytes);
  keyColumnJson.push(enc.encode(`,${JSON.stringify(column)}:`));
  keyType.push(typeCode(type));
  let slot = hashBytes(bytes, 0, bytes.length) & TABLE_MASK;
  while ((slotKey[slot] as number) >= 0) slot = (slot + 1) & TABLE_MASK;
  slotKey[slot] = k;
}

function lookupKey(b: Uint8Array, start: number, end: number): number {
  let slot = hashBytes(b, start, end) & TABLE_MASK;
  for (;;) {
    const k = slotKey[slot] as number;
    if (k < 0) return -1;
    const kb = keyBytes[k] as Uint8Array;
    if (kb.length === end - start) {
      let same = true;
      for (let j = 0; j < kb.length; j++) {
        if (kb[j] !== b[start + j]) {
          same = false;
          break;
        }
      }
      if (same) return k;
    }
    slot = (slot + 1) & TABLE_MASK;
  }
}

/** 0x20-0x7e. */
function isPrintable(c: number): boolean {
  return (c - 0x20) >>> 0 <= 0x5e;
}

/** [A-Za-z0-9._:%-]: the characters of an RFC 3164 hostname (as syslog.ts). */
function isHostChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x3a || c === 0x25 || c === 0x2d;
}

function startsWithCef(b: Uint8Array, i: number, end: number): boolean {
  return i + 4 <= end && b[i] === 0x43 && b[i + 1] === 0x45 && b[i + 2] === 0x46 && b[i + 3] === 0x3a;
}

/** AdditionalExtensions of the record being written, JSON-escaped (values at most double). */
const EXTRA = new Uint8Array(2 * FAST_MAX_LINE + 64);

/** JSON of a string, as bytes. */
function jsonBytes(s: string): Uint8Array {
  return enc.encode(JSON.stringify(s));
}

/** Per task: the record's constant parts, pre-encoded; and where the fast path may write. */
export class CefFastPath {
  /** `{"TimeGenerated":...,"Computer":` and `,"CollectorHostName":...,"DeviceVendor":` (the native path writes them too). */
  readonly prefixJson: Uint8Array;
  readonly collectorJson: Uint8Array;
  /** Per mapped key, the record number that last wrote it (a repeated key declines). */
  readonly #written = new Float64Array(keyBytes.length);
  #record = 0;
  /** Unmapped keys of the current record (start, end pairs), for the repeated-key check. */
  readonly #unmapped = new Int32Array(256);
  #lastTs5424 = '';

  constructor(receivedAt: string, collector: string) {
    this.prefixJson = enc.encode(`{"TimeGenerated":${JSON.stringify(receivedAt)},"Computer":`);
    this.collectorJson = enc.encode(`,"CollectorHostName":${JSON.stringify(collector)},"DeviceVendor":`);
  }

  /** The JSON of a block's source address (Computer when the message names no host), once per block. */
  static sourceJson(sourceIp: string): Uint8Array {
    return jsonBytes(sourceIp);
  }

  /**
   * b[start, end): one message (trailing CR/NUL already cut). Writes its record into the chosen
   * route's builder and returns the route, or FAST_UNROUTED / FAST_FILTERED (nothing written),
   * or FAST_DECLINED: the caller parses it the plain way.
   */
  write(
    b: Buffer,
    start: number,
    end: number,
    sourceJson: Uint8Array,
    routes: RouteSpec[],
    candidates: number[],
    builderFor: (route: number) => EntryBuilder,
  ): number {
    if (end > start && b[end - 1] === 0x0a) end--;
    if (end - start > FAST_MAX_LINE) return FAST_DECLINED;
    // Printable ASCII only (no UTF-8 to validate, nothing but '"' and '\' to escape): each part
    // below checks the bytes it passes over, so the line is read once.
    // PRI
    let facility = -1;
    let severity = -1;
    let p = start;
    if (p < end && b[p] === 0x3c) {
      let n = 0;
      let q = p + 1;
      while (q < end && q <= p + 4 && (b[q] as number) >= 0x30 && (b[q] as number) <= 0x39) n = n * 10 + ((b[q++] as number) - 0x30);
      const digits = q - p - 1;
      if (q >= end || b[q] !== 0x3e || digits < 1 || digits > 3 || (digits > 1 && b[p + 1] === 0x30) || n > 191) return FAST_DECLINED;
      facility = n >> 3;
      severity = n & 7;
      p = q + 1;
    }
    // Header -> host (or -1) and where "CEF:" starts.
    let hostStart = -1;
    let hostEnd = -1;
    if (facility >= 0 && p + 1 < end && b[p] === 0x31 && b[p + 1] === SP) {
      // RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then "-" (no structured data).
      const tokens: number[] = [];
      let q = p + 2;
      for (let k = 0; k < 5; k++) {
        let sp = q;
        while (sp < end && b[sp] !== SP) {
          if (!isPrintable(b[sp] as number)) return FAST_DECLINED;
          sp++;
        }
        if (sp >= end || sp === q) return FAST_DECLINED;
        tokens.push(q, sp);
        q = sp + 1;
      }
      const tsStart = tokens[0] as number;
      const tsEnd = tokens[1] as number;
      if (!(tsEnd - tsStart === 1 && b[tsStart] === 0x2d) && !this.#validTs5424(b, tsStart, tsEnd)) return FAST_DECLINED;
      const h0 = tokens[2] as number;
      const h1 = tokens[3] as number;
      if (!(h1 - h0 === 1 && b[h0] === 0x2d)) {
        hostStart = h0;
        hostEnd = h1;
      }
      if (q + 1 >= end || b[q] !== 0x2d || b[q + 1] !== SP) return FAST_DECLINED;
      q += 2;
      while (q < end && b[q] === SP) q++;
      p = q;
    } else if (!startsWithCef(b, p, end)) {
      if (facility < 0) return FAST_DECLINED;
      // RFC 3164: the timestamp (the plain path's expression, on a prefix longer than any match), then a host.
      const m = TS_3164.exec(b.toString('latin1', p, Math.min(end, p + 64)));
      if (!m || MONTHS[m[1] ?? ''] === undefined) return FAST_DECLINED;
      p += m[0].length;
      if (!startsWithCef(b, p, end)) {
        let sp = p;
        while (sp < end && b[sp] !== SP) sp++;
        if (sp >= end || sp === p || sp - p > 255 || b[sp - 1] === 0x3a) return FAST_DECLINED;
        for (let i = p; i < sp; i++) if (!isHostChar(b[i] as number)) return FAST_DECLINED;
        hostStart = p;
        hostEnd = sp;
        p = sp + 1;
      }
    }
    if (!startsWithCef(b, p, end)) return FAST_DECLINED;
    // CEF header: seven fields cut at '|', no backslash in them.
    const f = [0, 0, 0, 0, 0, 0, 0, 0];
    let q = p + 4;
    f[0] = q;
    for (let k = 1; k <= 7; k++) {
      while (q < end && b[q] !== BAR) {
        if (b[q] === BS || !isPrintable(b[q] as number)) return FAST_DECLINED;
        q++;
      }
      if (q >= end) return FAST_DECLINED;
      q++;
      f[k] = q;
    }
    // Version: digits between optional spaces, at most 1.
    let v = f[0];
    const vEnd = (f[1] as number) - 1;
    while (v < vEnd && b[v] === SP) v++;
    let version = 0;
    let vDigits = 0;
    while (v < vEnd && (b[v] as number) >= 0x30 && (b[v] as number) <= 0x39) {
      version = version * 10 + ((b[v++] as number) - 0x30);
      vDigits++;
    }
    while (v < vEnd && b[v] === SP) v++;
    if (vDigits === 0 || v !== vEnd || version > 1) return FAST_DECLINED;
    const extStart = f[7] as number;

    // Route, as pickRoute; vendor and product are only read when a route asks for them.
    let route = -1;
    for (const i of candidates) {
      const r = routes[i];
      if (!r) continue;
      if (r.facilities && !r.facilities.includes(facility)) continue;
      if (r.cefVendor !== null || r.cefProduct !== null) return FAST_DECLINED;
      route = i;
      break;
    }
    if (route < 0) return FAST_UNROUTED;
    const spec = routes[route] as RouteSpec;
    if (spec.table !== 'CommonSecurityLog') return FAST_DECLINED;
    if ((facility >= 0 && spec.dropFacilities.includes(facility)) || severity > spec.maxSeverity) return FAST_FILTERED;

    // The record.
    const builder = builderFor(route);
    const out = builder.buf;
    const recStart = builder.recordStart();
    let o = recStart;
    o = put(out, o, this.prefixJson);
    if (hostStart >= 0) o = quoteRaw(b, hostStart, hostEnd, out, o);
    else o = put(out, o, sourceJson);
    o = put(out, o, this.collectorJson);
    o = quoteRaw(b, f[1] as number, (f[2] as number) - 1, out, o);
    o = put(out, o, DEVICE_PRODUCT);
    o = quoteRaw(b, f[2] as number, (f[3] as number) - 1, out, o);
    o = put(out, o, DEVICE_VERSION);
    o = quoteRaw(b, f[3] as number, (f[4] as number) - 1, out, o);
    o = put(out, o, DEVICE_EVENT_CLASS_ID);
    o = quoteRaw(b, f[4] as number, (f[5] as number) - 1, out, o);
    o = put(out, o, ACTIVITY);
    o = quoteRaw(b, f[5] as number, (f[6] as number) - 1, out, o);
    o = put(out, o, LOG_SEVERITY);
    o = quoteRaw(b, f[6] as number, (f[7] as number) - 1, out, o);

    // Extension, as scanExtensions: from '=' to '='.
    const me = ++this.#record;
    const extra = EXTRA;
    let x = 0;
    let unmappedCount = 0;
    let keyStart = -1;
    let keyEnd = -1;
    let valueStart = -1;
    let i = extStart;
    for (;;) {
      for (; i < end; i++) {
        const c = b[i] as number;
        if (c === EQ) break;
        if (!isPrintable(c)) return FAST_DECLINED;
      }
      let s = -1;
      if (i < end) {
        let bs = i;
        while (bs > extStart && b[bs - 1] === BS) bs--;
        if (((i - bs) & 1) === 0) {
          s = i;
          while (s > extStart && isKeyChar(b[s - 1] as number)) s--;
          if (s === i || (s > extStart && b[s - 1] !== SP)) s = -1;
        }
      }
      if (s < 0 && i < end) {
        i++;
        continue;
      }
      // A key at [s, i) (or the end): the previous pair's value runs to it.
      if (valueStart >= 0) {
        let ve = i < end ? s : end;
        while (ve > valueStart && b[ve - 1] === SP) ve--;
        const k = lookupKey(b, keyStart, keyEnd);
        let mappedTo = -1;
        if (k >= 0) {
          if (this.#written[k] === me) return FAST_DECLINED;
          this.#written[k] = me;
          const t = keyType[k] as number;
          if (t === TYPE_OTHER) return FAST_DECLINED;
          if (t === TYPE_STRING) {
            o = put(out, o, keyColumnJson[k] as Uint8Array);
            out[o++] = QUOTE;
            o = copyValue(b, valueStart, ve, out, o);
            out[o++] = QUOTE;
            mappedTo = k;
          } else {
            const n = integerOf(b, valueStart, ve, t === TYPE_INT ? 10 : 18);
            if (n !== null && (t === TYPE_INT ? Math.abs(n) <= 2_147_483_647 : Number.isSafeInteger(n))) {
              o = put(out, o, keyColumnJson[k] as Uint8Array);
              o = writeInteger(n, out, o);
              mappedTo = k;
            }
          }
        } else {
          for (let u = 0; u < unmappedCount; u += 2) {
            if (sameBytes(b, this.#unmapped[u] as number, this.#unmapped[u + 1] as number, keyStart, keyEnd)) return FAST_DECLINED;
          }
          if (unmappedCount >= this.#unmapped.length) return FAST_DECLINED;
          this.#unmapped[unmappedCount++] = keyStart;
          this.#unmapped[unmappedCount++] = keyEnd;
        }
        if (mappedTo < 0) {
          if (x > 0) extra[x++] = 0x3b; // ;
          for (let j = keyStart; j < keyEnd; j++) extra[x++] = b[j] as number;
          extra[x++] = EQ;
          x = copyValue(b, valueStart, ve, extra, x);
        }
      }
      if (i >= end) break;
      keyStart = s;
      keyEnd = i;
      valueStart = i + 1;
      i++;
    }
    if (x > 0) {
      o = put(out, o, ADDITIONAL_EXTENSIONS);
      for (let j = 0; j < x; j++) out[o++] = extra[j] as number;
      out[o++] = QUOTE;
    }
    out[o++] = 0x7d; // }
    if (o - recStart > builder.max) return FAST_DECLINED; // too large for an entry: the plain way cuts it
    builder.commit(o);
    return route;
  }

  /** An RFC 5424 timestamp the plain path reads (Date.parse, the date's form); the last one is remembered. */
  #validTs5424(b: Buffer, start: number, end: number): boolean {
    const ts = b.toString('latin1', start, end);
    if (ts === this.#lastTs5424) return true;
    if (!/^\d{4}-\d\d-\d\dT/.test(ts) || Number.isNaN(Date.parse(ts))) return false;
    this.#lastTs5424 = ts;
    return true;
  }
}

const DEVICE_PRODUCT = enc.encode(',"DeviceProduct":');
const DEVICE_VERSION = enc.encode(',"DeviceVersion":');
const DEVICE_EVENT_CLASS_ID = enc.encode(',"DeviceEventClassID":');
const ACTIVITY = enc.encode(',"Activity":');
const LOG_SEVERITY = enc.encode(',"LogSeverity":');
const ADDITIONAL_EXTENSIONS = enc.encode(',"AdditionalExtensions":"');

function put(out: Uint8Array, o: number, bytes: Uint8Array): number {
  for (let j = 0; j < bytes.length; j++) out[o++] = bytes[j] as number;
  return o;
}

/** b[start, end) as a JSON string (printable ASCII: only '"' and '\' are escaped). */
function quoteRaw(b: Uint8Array, start: number, end: number, out: Uint8Array, o: number): number {
  out[o++] = QUOTE;
  for (let j = start; j < end; j++) {
    const c = b[j] as number;
    if (c === QUOTE || c === BS) out[o++] = BS;
    out[o++] = c;
  }
  out[o++] = QUOTE;
  return o;
}

/** An extension value: CEF's escapes undone (as unescapeValue), JSON's applied. */
function copyValue(b: Uint8Array, start: number, end: number, out: Uint8Array, o: number): number {
  for (let j = start; j < end; j++) {
    const c = b[j] as number;
    if (c === BS) {
      if (j + 1 >= end) {
        out[o++] = BS;
        out[o++] = BS;
        continue;
      }
      const n = b[++j] as number;
      if (n === 0x6e || n === 0x72) {
        out[o++] = BS; // \n, \r: the character, JSON-escaped
        out[o++] = n;
      } else if (n === EQ || n === BAR) {
        out[o++] = n;
      } else if (n === BS) {
        out[o++] = BS;
        out[o++] = BS;
      } else {
        out[o++] = BS; // a backslash kept, then the character
        out[o++] = BS;
        if (n === QUOTE) out[o++] = BS;
        out[o++] = n;
      }
      continue;
    }
    if (c === QUOTE) out[o++] = BS;
    out[o++] = c;
  }
  return o;
}

/** /^-?[0-9]{1,maxDigits}$/ as a number, or null. */
function integerOf(b: Uint8Array, start: number, end: number, maxDigits: number): number | null {
  let j = start;
  const negative = b[j] === 0x2d;
  if (negative) j++;
  const digits = end - j;
  if (digits < 1 || digits > maxDigits) return null;
  let n = 0;
  for (; j < end; j++) {
    const c = (b[j] as number) - 0x30;
    if (c < 0 || c > 9) return null;
    n = n * 10 + c;
  }
  return negative ? -n : n;
}

/** String(n) for a safe integer, as bytes (-0 is "0", as String writes it). */
function writeInteger(n: number, out: Uint8Array, o: number): number {
  if (n < 0) {
    out[o++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let j = o + digits - 1; j >= o; j--) {
    out[j] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return o + digits;
}

function sameBytes(b: Uint8Array, a0: number, a1: number, c0: number, c1: number): boolean {
  if (a1 - a0 !== c1 - c0) return false;
  for (let j = 0; j < a1 - a0; j++) if (b[a0 + j] !== b[c0 + j]) return false;
  return true;
}

/**
 * One syslog message -> its parts. RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`,
 * structured data validated and kept), RFC 3164 with the deviations senders really produce
 * (no hostname, no timestamp, a year or milliseconds in the timestamp, an ISO timestamp, Cisco's
 * trailing colon), and a bare CEF line with or without a PRI. What matches none is `raw`:
 * kept whole as the message, never dropped.
 */

export type SyslogFormat = 'rfc5424' | 'rfc3164' | 'raw';

export interface SdElement {
  id: string;
  params: Array<[string, string]>;
}

export interface ParsedSyslog {
  format: SyslogFormat;
  /** 0..23; -1 when the message had no PRI. */
  facility: number;
  /** 0..7; -1 when the message had no PRI. */
  severity: number;
  /** ISO time from the message, or null (none, or unreadable). */
  time: string | null;
  hostname: string | null;
  appName: string | null;
  procId: string | null;
  msgId: string | null;
  /** RFC 5424 structured data as sent ('' when nil). */
  sdText: string;
  sd: SdElement[];
  /** The MSG part (for 3164: after the tag). */
  message: string;
  /** Why a message that looked like a format failed it (counted as a parse failure); null when fine. */
  failure: string | null;
}

/** Month names of RFC 3164 timestamps (fast.ts checks its matches against them too). */
export const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

function raw(text: string, facility: number, severity: number, failure: string | null): ParsedSyslog {
  return {
    format: 'raw',
    facility,
    severity,
    time: null,
    hostname: null,
    appName: null,
    procId: null,
    msgId: null,
    sdText: '',
    sd: [],
    message: text,
    failure,
  };
}

/** `now` decides the year of a 3164 timestamp that has none. */
export function parseSyslog(text: string, now: Date): ParsedSyslog {
  let facility = -1;
  let severity = -1;
  let pos = 0;
  if (text.charCodeAt(0) === 0x3c /* < */) {
    const close = text.indexOf('>', 1);
    const pri = close > 1 && close <= 4 ? text.slice(1, close) : '';
    if (!/^(0|[1-9][0-9]{0,2})$/.test(pri) || Number(pri) > 191) return raw(text, -1, -1, 'bad PRI');
    const n = Number(pri);
    facility = n >> 3;
    severity = n & 7;
    pos = close + 1;
  }
  const rest = text.slice(pos);
  if (rest.startsWith('1 ') && facility >= 0) return parse5424(text, rest.slice(2), facility, severity);
  if (rest.startsWith('CEF:')) return { ...raw(rest, facility, severity, null), format: facility >= 0 ? 'rfc3164' : 'raw' };
  if (facility < 0) return raw(text, -1, -1, null);
  return parse3164(rest, facility, severity, now);
}

function nil(s: string | undefined): string | null {
  return s === undefined || s === '-' ? null : s;
}

function parse5424(text: string, body: string, facility: number, severity: number): ParsedSyslog {
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID: five space-separated tokens.
  const parts: string[] = [];
  let p = 0;
  for (let k = 0; k < 5; k++) {
    const sp = body.indexOf(' ', p);
    if (sp < 0) return raw(text, facility, severity, 'RFC 5424 header incomplete');
    parts.push(body.slice(p, sp));
    p = sp + 1;
  }
  const [ts, host, app, procId, msgId] = parts;
  let time: string | null = null;
  if (ts !== '-') {
    const t = ts === undefined ? NaN : Date.parse(ts);
    if (Number.isNaN(t) || !/^\d{4}-\d\d-\d\dT/.test(ts ?? '')) return raw(text, facility, severity, 'RFC 5424 timestamp unreadable');
    time = new Date(t).toISOString();
  }
  let sdText = '';
  const sd: SdElement[] = [];
  if (body.charCodeAt(p) === 0x2d /* - */) {
    p++;
  } else if (body.charCodeAt(p) === 0x5b /* [ */) {
    const start = p;
    const r = parseSd(body, p, sd);
    if (r < 0) return raw(text, facility, severity, 'RFC 5424 structured data malformed');
    p = r;
    sdText = body.slice(start, p);
  } else {
    return raw(text, facility, severity, 'RFC 5424 structured data missing');
  }
  let message = '';
  if (p < body.length) {
    if (body.charCodeAt(p) !== 0x20) return raw(text, facility, severity, 'RFC 5424: no space after structured data');
    message = body.slice(p + 1);
    if (message.charCodeAt(0) === 0xfeff) message = message.slice(1); // the BOM that marks UTF-8
    // Relays (rsyslog's %msg% after a 3164 tag) keep the space that followed the tag: not message text.
    message = trimLeadingSpaces(message);
  }
  return {
    format: 'rfc5424',
    facility,
    severity,
    time,
    hostname: nil(host),
    appName: nil(app),
    procId: nil(procId),
    msgId: nil(msgId),
    sdText,
    sd,
    message,
    failure: null,
  };
}

/** Parses `[id k="v" ...]...` from p; returns the position after it, or -1. */
function parseSd(s: string, p: number, out: SdElement[]): number {
  while (s.charCodeAt(p) === 0x5b) {
    p++;
    let e = p;
    while (e < s.length && !' ]="'.includes(s[e] ?? '')) e++;
    const id = s.slice(p, e);
    if (id === '' || id.length > 32) return -1;
    const el: SdElement = { id, params: [] };
    p = e;
    while (s.charCodeAt(p) === 0x20) {
      p++;
      e = p;
      while (e < s.length && !' ]="'.includes(s[e] ?? '')) e++;
      const name = s.slice(p, e);
      if (name === '' || name.length > 32 || s[e] !== '=' || s[e + 1] !== '"') return -1;
      p = e + 2;
      let value = '';
      for (;;) {
        if (p >= s.length) return -1;
        const c = s[p];
        if (c === '\\' && p + 1 < s.length && '"\\]'.includes(s[p + 1] ?? '')) {
          value += s[p + 1];
          p += 2;
          continue;
        }
        if (c === '"') break;
        value += c;
        p++;
      }
      p++;
      el.params.push([name, value]);
    }
    if (s.charCodeAt(p) !== 0x5d) return -1;
    p++;
    out.push(el);
  }
  return p;
}

/** An RFC 3164 timestamp, with the usual deviations (fast.ts runs the same expression on a line's prefix). */
export const TS_3164 = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d\d):(\d\d):(\d\d)(\.\d{1,6})?(?: ?[A-Z]{3,4})?:? /;
const TS_ISO = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)?):? /;
const TAG = /^([^\s:[\]]{1,128})(?:\[([^\]\s]{1,32})\])?: ?/;

/** The last 3164 timestamp read, with the `now` it was read against, and its ISO form. */
let lastTime: { text: string; now: number; iso: string | null } = { text: '', now: 0, iso: null };

function parse3164(body: string, facility: number, severity: number, now: Date): ParsedSyslog {
  let p = 0;
  let time: string | null = null;
  let m = TS_3164.exec(body);
  if (m && lastTime.text === m[0] && lastTime.now === now.getTime()) {
    // Messages of one second share their timestamp: the local-time arithmetic is done once.
    time = lastTime.iso;
    p = m[0].length;
  } else if (m) {
    const [, mon = '', day = '1', year, hh = '0', mi = '0', ss = '0', frac] = m;
    const month = MONTHS[mon];
    if (month !== undefined) {
      // No year: this year, unless that lands over a day in the future (a December message read in January).
      let y = year ? Number(year) : now.getFullYear();
      const ms = frac ? Math.round(Number(frac) * 1000) : 0;
      let d = new Date(y, month, Number(day), Number(hh), Number(mi), Number(ss), ms);
      if (!year && d.getTime() > now.getTime() + 86_400_000) d = new Date(--y, month, Number(day), Number(hh), Number(mi), Number(ss), ms);
      if (!Number.isNaN(d.getTime())) time = d.toISOString();
      p = m[0].length;
      lastTime = { text: m[0], now: now.getTime(), iso: time };
    }
  } else if ((m = TS_ISO.exec(body))) {
    const t = Date.parse(m[1] ?? '');
    if (!Number.isNaN(t)) time = new Date(t).toISOString();
    p = m[0].length;
  }
  let rest = body.slice(p);
  let hostname: string | null = null;
  if (rest.startsWith('CEF:')) return { ...raw(rest, facility, severity, null), format: 'rfc3164', time };
  // A hostname is there unless the first word is already the tag ("sshd[12]:" or "su:").
  const sp = rest.indexOf(' ');
  const first = sp < 0 ? rest : rest.slice(0, sp);
  if (time !== null && sp > 0 && !first.endsWith(':') && !first.includes('[') && /^[A-Za-z0-9._:%-]{1,255}$/.test(first)) {
    hostname = first;
    rest = rest.slice(sp + 1);
  }
  if (rest.startsWith('CEF:')) return { ...raw(rest, facility, severity, null), format: 'rfc3164', time, hostname };
  let appName: string | null = null;
  let procId: string | null = null;
  const t = TAG.exec(rest);
  if (t && (t[0].endsWith(': ') || t[0].endsWith(':'))) {
    appName = t[1] ?? null;
    procId = t[2] ?? null;
    rest = rest.slice(t[0].length);
  }
  rest = trimLeadingSpaces(rest);
  if (rest.startsWith('CEF:')) return { ...raw(rest, facility, severity, null), format: 'rfc3164', time, hostname, appName, procId };
  return { format: 'rfc3164', facility, severity, time, hostname, appName, procId, msgId: null, sdText: '', sd: [], message: rest, failure: null };
}

function trimLeadingSpaces(s: string): string {
  let i = 0;
  while (s.charCodeAt(i) === 0x20) i++;
  return i === 0 ? s : s.slice(i);
}

/**
 * Host and request-target parsing. Everything that reaches the allowlist goes through here, so
 * the rules are strict: one canonical spelling per destination, and anything a resolver or URL
 * parser might read differently from us (numeric shorthands, percent-escapes, backslashes,
 * userinfo, zone ids) is refused instead of guessed at.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import ipaddr from 'ipaddr.js';
import { PortcullisError } from '../util/errors.js';

export type HostKind = 'name' | 'ipv4' | 'ipv6';

/** host normalised (see normaliseHost); IPv6 without brackets. */
export interface Target {
  readonly host: string;
  readonly port: number;
  readonly kind: HostKind;
}

export interface ClassifiedHost {
  readonly host: string;
  readonly kind: HostKind;
}

/** Bounds the work done on hostile input; real host names are ≤253 octets (IDN input a bit more). */
const MAX_RAW_HOST = 1024;
const MAX_NAME = 253;
const MAX_LABEL = 63;

// Strict dotted-quad: no leading zeros (inet_aton reads 010 as octal 8), no shorthands.
const DOTTED_QUAD = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const V6_CHARS = /^[0-9a-fA-F:.]+$/;

export function isDottedQuad(s: string): boolean {
  return DOTTED_QUAD.test(s);
}

/** Dotted-quad (already validated) → unsigned 32-bit integer; NaN if malformed. */
export function ipv4ToInt(s: string): number {
  let acc = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || octet > 255) return NaN;
      acc = acc * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return NaN;
    } else {
      return NaN;
    }
  }
  if (dots !== 3 || digits === 0 || octet > 255) return NaN;
  return acc * 256 + octet;
}

/**
 * Parses an IPv6 literal (no brackets). IPv4-mapped addresses (::ffff:a.b.c.d) come back as the
 * IPv4 address they are: that is where a socket to them goes, so the IPv4 rules must apply.
 */
export function classifyIpv6(s: string): ClassifiedHost | null {
  if (s.length > 45 || !V6_CHARS.test(s)) return null;
  // Fast path: dual-stack listeners report every IPv4 client as ::ffff:a.b.c.d.
  if (s.length > 7 && s.slice(0, 7).toLowerCase() === '::ffff:' && isDottedQuad(s.slice(7))) {
    return { host: s.slice(7), kind: 'ipv4' };
  }
  if (s.includes('.') && !isDottedQuad(s.slice(s.lastIndexOf(':') + 1))) return null;
  let addr: ipaddr.IPv6;
  try {
    addr = ipaddr.IPv6.parse(s);
  } catch {
    return null;
  }
  const parts = addr.parts;
  if (parts[0] === 0 && parts[1] === 0 && parts[2] === 0 && parts[3] === 0 && parts[4] === 0 && parts[5] === 0xffff) {
    const hi = parts[6] ?? 0;
    const lo = parts[7] ?? 0;
    return { host: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, kind: 'ipv4' };
  }
  return { host: addr.toString(), kind: 'ipv6' };
}

function isAsciiHostChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 45 || // -
    c === 46 || // .
    c === 95 // _
  );
}

/**
 * Label rules on an ASCII, lower-cased name: 1..63 chars, LDH plus '_' (underscores occur in real
 * service names and are harmless here), no leading/trailing hyphen, total ≤253.
 * Returns 'ok', 'invalid', or 'numeric' when the last label looks like a number: a WHATWG URL
 * parser or inet_aton would read such a name as an IPv4 address (127.1, 0x7f.1, 2130706433).
 */
function checkLabels(s: string): 'ok' | 'invalid' | 'numeric' {
  if (s.length === 0 || s.length > MAX_NAME) return 'invalid';
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      const len = i - start;
      if (len === 0 || len > MAX_LABEL) return 'invalid';
      if (s.charCodeAt(start) === 45 || s.charCodeAt(i - 1) === 45) return 'invalid';
      start = i + 1;
    } else if (!isAsciiHostChar(c) || (c >= 65 && c <= 90)) {
      return 'invalid';
    }
  }
  const last = s.slice(s.lastIndexOf('.') + 1);
  if (/^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last)) return 'numeric';
  return 'ok';
}

/** normaliseHost with the kind of host it is. */
export function classifyHost(raw: string): ClassifiedHost | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_RAW_HOST) return null;
  if (raw.charCodeAt(0) === 91 /* [ */) {
    if (raw.charCodeAt(raw.length - 1) !== 93 /* ] */) return null;
    const inner = classifyIpv6(raw.slice(1, -1));
    return inner;
  }
  if (raw.includes(':')) return classifyIpv6(raw);

  let s = raw.charCodeAt(raw.length - 1) === 46 ? raw.slice(0, -1) : raw;
  if (s.length === 0) return null;
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) ascii = false;
    // Any other ASCII (%, /, \, @, space, controls…) would be decoded or split differently by
    // someone else's parser: refuse rather than let domainToASCII "fix" it.
    else if (!isAsciiHostChar(c)) return null;
  }
  if (ascii) {
    s = s.toLowerCase();
    const verdict = checkLabels(s);
    if (verdict === 'numeric') return isDottedQuad(s) ? { host: s, kind: 'ipv4' } : null;
    if (verdict !== 'ok') return null;
    if (s.includes('xn--') && !punycodeLabelsRoundTrip(s)) return null;
    return { host: s, kind: 'name' };
  }
  // IDN: UTS #46 mapping (case fold, full-width dots…) then punycode.
  const converted = domainToASCII(s);
  if (converted === '') return null;
  // A non-ASCII spelling of an IP address or numeric name is not a name we want to honour.
  if (checkLabels(converted) !== 'ok') return null;
  return { host: converted, kind: 'name' };
}

/**
 * Every `xn--` label must decode to Unicode and encode back to itself. Node 20 returns '' for an
 * undecodable label while Node 24 returns it unchanged, so check the round trip, not either quirk.
 */
function punycodeLabelsRoundTrip(host: string): boolean {
  for (const label of host.split('.')) {
    if (!label.startsWith('xn--')) continue;
    const unicode = domainToUnicode(label);
    if (unicode === '' || unicode === label || domainToASCII(unicode) !== label) return false;
  }
  return true;
}

/**
 * Canonical host: lower-case, one trailing dot stripped, IDN → punycode, IPv6 compressed
 * (RFC 5952, no brackets), IPv4-mapped IPv6 → IPv4. Only strict dotted-quad IPv4 is an address;
 * numeric shorthands (127.1, 0x7f000001, 2130706433, 010.0.0.1) are neither names nor addresses.
 * null when invalid.
 */
export function normaliseHost(raw: string): string | null {
  const c = classifyHost(raw);
  return c === null ? null : c.host;
}

/** 1..65535, ASCII digits only (no sign, no spaces, at most 5 digits). NaN if not. */
function parsePort(s: string): number {
  if (s.length === 0 || s.length > 5) return NaN;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return NaN;
    n = n * 10 + (c - 48);
  }
  return n >= 1 && n <= 65535 ? n : NaN;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
}

/**
 * Splits "host:port" / "[v6]:port". Returns null when malformed; `required` = port must be present.
 */
function splitHostPort(authority: string, portRequired: boolean, defaultPort: number): { host: ClassifiedHost; port: number } | null {
  let hostPart: string;
  let portPart: string | undefined;
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    if (close < 0) return null;
    hostPart = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest.length > 0) {
      if (rest.charCodeAt(0) !== 58 /* : */) return null;
      portPart = rest.slice(1);
    }
    const h = classifyHost(hostPart);
    if (h === null || h.kind === 'name') return null; // brackets are for IP literals only
    const port = portPart === undefined ? (portRequired ? NaN : defaultPort) : parsePort(portPart);
    return Number.isNaN(port) ? null : { host: h, port };
  }
  const colon = authority.lastIndexOf(':');
  if (colon >= 0) {
    hostPart = authority.slice(0, colon);
    portPart = authority.slice(colon + 1);
    // An unbracketed IPv6 literal is ambiguous with the port separator.
    if (hostPart.includes(':')) return null;
  } else {
    hostPart = authority;
  }
  const h = classifyHost(hostPart);
  if (h === null) return null;
  const port = portPart === undefined ? (portRequired ? NaN : defaultPort) : parsePort(portPart);
  return Number.isNaN(port) ? null : { host: h, port };
}

/** CONNECT request-target (authority-form): "host:port" or "[v6]:port"; the port is required. */
export function parseConnectAuthority(authority: string): Target {
  if (typeof authority !== 'string' || authority.length === 0 || authority.length > MAX_RAW_HOST) {
    throw new PortcullisError('PCL_ERR_BAD_AUTHORITY', 'CONNECT target is empty or too long');
  }
  const hp = splitHostPort(authority, true, 0);
  if (hp === null) {
    throw new PortcullisError('PCL_ERR_BAD_AUTHORITY', `CONNECT target ${quote(authority)} is not host:port with a valid host and a port 1-65535`);
  }
  return { host: hp.host.host, port: hp.port, kind: hp.host.kind };
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Plain-HTTP proxy request-target (absolute-form) → Target; port defaults to 80.
 * Only http: (https goes through CONNECT). Userinfo, backslashes, whitespace and control
 * characters are refused: the upstream's URL parser might see a different host than we did.
 */
export function targetFromAbsoluteUrl(url: string): Target {
  if (typeof url !== 'string' || url.length === 0) {
    throw new PortcullisError('PCL_ERR_BAD_URL', 'request target is empty');
  }
  const m = SCHEME.exec(url);
  if (m === null) {
    throw new PortcullisError('PCL_ERR_BAD_URL', `request target ${quote(url)} is not an absolute URL`);
  }
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme !== 'http') {
    throw new PortcullisError('PCL_ERR_BAD_SCHEME', `scheme ${quote(scheme)} is not forwarded; only http: (use CONNECT for https)`);
  }
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 92 /* \ */) {
      throw new PortcullisError('PCL_ERR_BAD_URL', 'request target contains whitespace, a control character or a backslash');
    }
  }
  const start = m[0].length;
  if (url.charCodeAt(start) !== 47 || url.charCodeAt(start + 1) !== 47) {
    throw new PortcullisError('PCL_ERR_BAD_URL', `request target ${quote(url)} has no //authority`);
  }
  let end = start + 2;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const authority = url.slice(start + 2, end);
  if (authority.includes('@')) {
    throw new PortcullisError('PCL_ERR_BAD_URL', 'credentials in the URL (userinfo) are not accepted');
  }
  if (authority.length === 0 || authority.length > MAX_RAW_HOST) {
    throw new PortcullisError('PCL_ERR_BAD_URL', `request target ${quote(url)} has no valid host`);
  }
  const hp = splitHostPort(authority, false, 80);
  if (hp === null) {
    throw new PortcullisError('PCL_ERR_BAD_URL', `request target ${quote(url)} has no valid host or port`);
  }
  return { host: hp.host.host, port: hp.port, kind: hp.host.kind };
}

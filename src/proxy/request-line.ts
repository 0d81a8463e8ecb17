/**
 * The request head, read strictly (RFC 9112 §2.2, §3, §5): `method SP request-target SP
 * HTTP-version CRLF`, then field lines `name ":" OWS value OWS CRLF`, then CRLF. Node's parser
 * (llhttp) is lenient where a proxy must not be: it takes a line without a version as HTTP/0.9,
 * several spaces between the parts, `RTSP/1.0` or `ICE/1.0` as the version of a GET, and
 * characters in the request-target that are not URI characters. docs/design-notes.md lists what
 * is refused and why, and why a connection carries one plain-HTTP request (so every request line
 * is read here). Pure functions over bytes: the same answer however the head was split.
 */
import { Errors, withDetail, type Refusal } from '../errors/catalogue.js';

/** Why a head was refused; `detail` is appended to the catalogue message. */
export interface HeadFault {
  readonly fault: 'syntax' | 'version' | 'too_large';
  readonly detail: string;
}

export interface RequestLine {
  readonly method: string;
  readonly target: string;
  /** Offset just past the line's CRLF. */
  readonly end: number;
}

const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;
const HTAB = 0x09;
const COLON = 0x3a;
const PERCENT = 0x25;

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = byteSet("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
/** RFC 3986 unreserved, gen-delims but `#` (absolute-URI has no fragment), sub-delims, and `%`. */
const TARGET = byteSet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?[]@!$&'()*+,;=%");
const HEX = byteSet('0123456789ABCDEFabcdef');

function byteSet(chars: string): Uint8Array {
  const set = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) set[chars.charCodeAt(i)] = 1;
  return set;
}

function syntax(detail: string): HeadFault {
  return { fault: 'syntax', detail };
}

export function isHeadFault(x: unknown): x is HeadFault {
  return typeof x === 'object' && x !== null && 'fault' in x;
}

/** The request-target's characters: URI characters only, `%` followed by two hex digits. */
export function targetFault(target: string): HeadFault | null {
  if (target.length === 0) return syntax('empty request-target');
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c > 0xff || TARGET[c] !== 1) return syntax('character not allowed in the request-target');
    if (c === PERCENT && (HEX[target.charCodeAt(i + 1)] !== 1 || HEX[target.charCodeAt(i + 2)] !== 1)) {
      return syntax('malformed percent-encoding in the request-target');
    }
  }
  return null;
}

/** HTTP/1.0 and HTTP/1.1 are spoken; any other well-formed version is refused (505). */
export function versionFault(major: number, minor: number): HeadFault | null {
  if (major === 1 && (minor === 0 || minor === 1)) return null;
  // HTTP/0.9 request lines carry no version: one that names it is malformed, not a version to refuse with 505.
  if (major === 0 && minor === 9) return syntax('no HTTP version (HTTP/0.9 request line)');
  return { fault: 'version', detail: `HTTP/${major}.${minor}` };
}

/**
 * The request line at the start of `buf`: null while it is incomplete (no LF yet), a fault, or
 * the parsed line. Nothing is skipped: not leading empty lines (RFC 9112 §2.2 allows ignoring
 * them where a request follows a body; the first bytes of a connection follow nothing), not
 * whitespace.
 */
export function readRequestLine(buf: Buffer, maxBytes: number): RequestLine | HeadFault | null {
  const lf = buf.indexOf(LF);
  if (lf < 0) return buf.length > maxBytes ? { fault: 'too_large', detail: 'request line' } : null;
  if (lf + 1 > maxBytes) return { fault: 'too_large', detail: 'request line' };
  if (lf === 0 || buf[lf - 1] !== CR) return syntax(lf === 0 ? 'empty line before the request line' : 'request line not ended by CRLF');
  const eol = lf - 1;
  let i = 0;
  while (i < eol && TCHAR[buf[i] ?? 0] === 1) i++;
  if (i === 0) return syntax(buf[0] === CR ? 'empty line before the request line' : 'request line must start with a method');
  if (i === eol) return syntax('no request-target and no HTTP version');
  if (buf[i] !== SP) return syntax('method must be followed by one space');
  const method = buf.toString('latin1', 0, i);
  const t0 = ++i;
  while (i < eol && buf[i] !== SP) {
    const c = buf[i] ?? 0;
    if (c === CR || c === HTAB || c < 0x20 || c === 0x7f) return syntax('control character or tab in the request line');
    i++;
  }
  if (i === t0) return syntax('more than one space after the method');
  const target = buf.toString('latin1', t0, i);
  const bad = targetFault(target);
  if (bad) return bad;
  if (i === eol) return syntax('no HTTP version');
  const v0 = i + 1;
  if (eol - v0 !== 8) {
    if (buf[v0] === SP) return syntax('more than one space before the HTTP version');
    return syntax('HTTP version must be HTTP/DIGIT.DIGIT and end the line');
  }
  // "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
  if (buf.toString('latin1', v0, v0 + 5) !== 'HTTP/' || !isDigit(buf[v0 + 5]) || buf[v0 + 6] !== 0x2e || !isDigit(buf[v0 + 7])) {
    return syntax('HTTP version must be HTTP/DIGIT.DIGIT and end the line');
  }
  const fault = versionFault((buf[v0 + 5] ?? 0) - 0x30, (buf[v0 + 7] ?? 0) - 0x30);
  if (fault) return fault;
  return { method, target, end: lf + 1 };
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** The field section so far: complete (`end`: just past the empty line), or checked up to `resumeAt`. */
export type FieldScan = { readonly end: number } | { readonly resumeAt: number };

/**
 * The field lines after the request line, from `start` (the request line's end, or the `resumeAt`
 * of the previous call, so a head that arrives a byte at a time is checked once, not once per
 * byte): the offset just past the empty line that ends the head (where a CONNECT's tunnel bytes
 * begin), where to resume once more bytes came, or a fault. Refuses obs-fold, whitespace before
 * the colon, bare CR or LF, and control characters in values.
 */
export function readFieldSection(buf: Buffer, start: number, maxBytes: number): FieldScan | HeadFault {
  let p = start;
  for (;;) {
    const lf = buf.indexOf(LF, p);
    if (lf < 0) return buf.length > maxBytes ? { fault: 'too_large', detail: 'request headers' } : { resumeAt: p };
    if (lf + 1 > maxBytes) return { fault: 'too_large', detail: 'request headers' };
    if (lf === p || buf[lf - 1] !== CR) return syntax('header line not ended by CRLF');
    const eol = lf - 1;
    if (eol === p) return { end: lf + 1 };
    const fault = fieldLineFault(buf, p, eol);
    if (fault) return fault;
    p = lf + 1;
  }
}

function fieldLineFault(buf: Buffer, from: number, eol: number): HeadFault | null {
  let i = from;
  while (i < eol && TCHAR[buf[i] ?? 0] === 1) i++;
  if (i === from) return syntax(buf[from] === SP || buf[from] === HTAB ? 'obsolete line folding' : 'invalid header name');
  if (buf[i] !== COLON) return syntax('header name must be followed by a colon');
  for (i++; i < eol; i++) {
    const c = buf[i] ?? 0;
    if ((c < 0x20 && c !== HTAB) || c === 0x7f) return syntax('control character in a header value');
  }
  return null;
}

/** The refusal for a fault in the request line (`inLine`) or in the field lines. */
export function headRefusal(f: HeadFault, inLine: boolean): Refusal {
  if (f.fault === 'too_large') return Errors.HEADER_TOO_LARGE;
  if (f.fault === 'version') return withDetail(Errors.HTTP_VERSION, f.detail);
  return withDetail(inLine ? Errors.REQUEST_LINE : Errors.PARSE, f.detail);
}

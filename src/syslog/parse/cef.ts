/**
 * CEF (ArcSight Common Event Format, versions 0 and 1):
 *   CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|Extension
 * Header fields escape `\|` and `\\`; extension values escape `\=`, `\\`, `\n` and `\r` (and,
 * in the wild, `\|`, which we read as `|`). The extension is `key=value` pairs separated by
 * spaces; a value runs to the space before the next key, so values may hold spaces and even an
 * unescaped `=` when the text before it cannot be a key (a URL's query string).
 */

export interface CefHeader {
  version: number;
  vendor: string;
  product: string;
  deviceVersion: string;
  signatureId: string;
  name: string;
  severity: string;
}

export interface CefEvent extends CefHeader {
  /** In order of appearance; a repeated key keeps its last value. */
  extensions: Map<string, string>;
}

/** The header, and the extension as flat pairs (key, value, ...) in order, repeated keys included. */
export interface CefPairs extends CefHeader {
  pairs: string[];
}

/** text starts at "CEF:"; null when it is not a well-formed CEF header. */
export function parseCef(text: string): CefEvent | null {
  const c = parseCefPairs(text);
  return c ? cefEvent(c) : null;
}

/** The pairs into a Map: a repeated key keeps its first place and its last value. */
export function cefEvent(c: CefPairs): CefEvent {
  const extensions = new Map<string, string>();
  for (let k = 0; k + 1 < c.pairs.length; k += 2) extensions.set(c.pairs[k] as string, c.pairs[k + 1] as string);
  const { pairs: _pairs, ...header } = c;
  return { ...header, extensions };
}

/** parseCef without the Map (the pool's hot path builds JSON from the pairs directly). */
export function parseCefPairs(text: string): CefPairs | null {
  if (!text.startsWith('CEF:')) return null;
  const fields: string[] = [];
  let i = headerFast(text, fields);
  if (i < 0) {
    fields.length = 0;
    i = headerEscaped(text, fields);
  }
  if (fields.length < 7) return null;
  const [versionText = '', vendor = '', product = '', deviceVersion = '', signatureId = '', name = '', severity = ''] = fields;
  const version = Number(versionText.trim());
  if (!/^\s*[0-9]+\s*$/.test(versionText) || version > 1) return null;
  const pairs: string[] = [];
  scanExtensions(text.slice(i), pairs);
  return { version, vendor, product, deviceVersion, signatureId, name, severity, pairs };
}

/**
 * The seven header fields cut at each '|' (slices, no per-character copy): the usual header, with
 * no backslash. Returns where the extension starts, or -1 when the header holds a backslash (its
 * escapes need headerEscaped) or has fewer than seven fields.
 */
function headerFast(text: string, fields: string[]): number {
  let start = 4;
  while (fields.length < 7) {
    const bar = text.indexOf('|', start);
    if (bar < 0) return -1;
    fields.push(text.slice(start, bar));
    start = bar + 1;
  }
  const backslash = text.indexOf('\\', 4);
  return backslash >= 0 && backslash < start ? -1 : start;
}

/** The header read character by character, unescaping `\|` and `\\`; returns where the extension starts. */
function headerEscaped(text: string, fields: string[]): number {
  let cur = '';
  let i = 4;
  for (; i < text.length && fields.length < 7; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */ && i + 1 < text.length) {
      const next = text[i + 1];
      if (next === '|' || next === '\\') {
        cur += next;
        i++;
        continue;
      }
      cur += '\\';
      continue;
    }
    if (c === 0x7c /* | */) {
      fields.push(cur);
      cur = '';
      continue;
    }
    cur += text[i];
  }
  return i;
}

export function parseExtensions(ext: string): Map<string, string> {
  const pairs: string[] = [];
  scanExtensions(ext, pairs);
  const out = new Map<string, string>();
  for (let k = 0; k + 1 < pairs.length; k += 2) out.set(pairs[k] as string, pairs[k + 1] as string);
  return out;
}

/**
 * The extension's pairs in order, pushed flat (key, value, key, value, ...), repeated keys as
 * they come. A key is the word (back to the last space) before an unescaped '=' when every
 * character of it may be in a key; a value runs from its '=' to the next key's word, less the
 * separating spaces. An '=' is escaped when an odd run of backslashes precedes it. It jumps from
 * '=' to '=' rather than reading every character: values are most of the text.
 */
export function scanExtensions(ext: string, pairs: string[]): void {
  let key = '';
  let valueStart = -1;
  for (let i = ext.indexOf('='); i >= 0; i = ext.indexOf('=', i + 1)) {
    let b = i;
    while (b > 0 && ext.charCodeAt(b - 1) === 0x5c) b--;
    if (((i - b) & 1) === 1) continue; // escaped
    let s = i;
    while (s > 0 && isKeyChar(ext.charCodeAt(s - 1))) s--;
    if (s === i || (s > 0 && ext.charCodeAt(s - 1) !== 0x20)) continue; // not a key
    if (valueStart >= 0) pairs.push(key, valueOf(ext, valueStart, s));
    key = ext.slice(s, i);
    valueStart = i + 1;
  }
  if (valueStart >= 0) pairs.push(key, valueOf(ext, valueStart, ext.length));
}

/** ext[start, end) less trailing spaces (they separate it from the next key), unescaped. */
function valueOf(ext: string, start: number, end: number): string {
  while (end > start && ext.charCodeAt(end - 1) === 0x20) end--;
  return unescapeValue(ext.slice(start, end));
}

/** [A-Za-z0-9_.\-[\]]: the characters of an extension key (fast.ts reads bytes with it too). */
export function isKeyChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2e || c === 0x2d || c === 0x5b || c === 0x5d;
}

export function unescapeValue(v: string): string {
  if (!v.includes('\\')) return v;
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '\\' && i + 1 < v.length) {
      const n = v[i + 1];
      i++;
      if (n === 'n') out += '\n';
      else if (n === 'r') out += '\r';
      else if (n === '=' || n === '\\' || n === '|') out += n;
      else out += `\\${n ?? ''}`;
      continue;
    }
    out += c;
  }
  return out;
}

/** The inverse, for tests and for writers: header fields escape | and \, values = and \ and newlines. */
export function escapeHeader(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

export function escapeValue(s: string): string {
  return s
    .replace(/\\/g, '\\\\')
    .replace(/=/g, '\\=')
    .replace(/\r\n|\n/g, '\\n')
    .replace(/\r/g, '\\r');
}

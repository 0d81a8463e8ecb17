/**
 * CEF (ArcSight Common Event Format, versions 0 and 1):
 *   CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|Extension
 * Header fields escape `\|` and `\\`; extension values escape `\=`, `\\`, `\n` and `\r` (and,
 * in the wild, `\|`, which we read as `|`). The extension is `key=value` pairs separated by
 * spaces; a value runs to the space before the next key, so values may hold spaces and even an
 * unescaped `=` when the text before it cannot be a key (a URL's query string).
 */

export interface CefEvent {
  version: number;
  vendor: string;
  product: string;
  deviceVersion: string;
  signatureId: string;
  name: string;
  severity: string;
  /** In order of appearance; a repeated key keeps its last value. */
  extensions: Map<string, string>;
}

const KEY = /^[A-Za-z0-9_.\-[\]]+$/;

/** text starts at "CEF:"; null when it is not a well-formed CEF header. */
export function parseCef(text: string): CefEvent | null {
  if (!text.startsWith('CEF:')) return null;
  const fields: string[] = [];
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
  if (fields.length < 7) return null;
  const [versionText = '', vendor = '', product = '', deviceVersion = '', signatureId = '', name = '', severity = ''] = fields;
  const version = Number(versionText.trim());
  if (!/^\s*[0-9]+\s*$/.test(versionText) || version > 1) return null;
  return { version, vendor, product, deviceVersion, signatureId, name, severity, extensions: parseExtensions(text.slice(i)) };
}

export function parseExtensions(ext: string): Map<string, string> {
  const out = new Map<string, string>();
  // Positions of unescaped '=' whose preceding word is a key.
  const keys: Array<{ key: string; keyStart: number; valueStart: number }> = [];
  for (let i = 0; i < ext.length; i++) {
    const c = ext.charCodeAt(i);
    if (c === 0x5c) {
      i++;
      continue;
    }
    if (c !== 0x3d) continue;
    let s = i;
    while (s > 0 && ext.charCodeAt(s - 1) !== 0x20) s--;
    const key = ext.slice(s, i);
    if (key === '' || !KEY.test(key)) continue;
    // The key must follow a space (or open the extension), and not sit inside the previous value's escape.
    keys.push({ key, keyStart: s, valueStart: i + 1 });
  }
  for (let k = 0; k < keys.length; k++) {
    const cur = keys[k];
    if (!cur) continue;
    const next = keys[k + 1];
    let end = next ? next.keyStart : ext.length;
    // Values end before the separating space(s); trailing spaces are not part of a value.
    while (end > cur.valueStart && ext.charCodeAt(end - 1) === 0x20) end--;
    out.set(cur.key, unescapeValue(ext.slice(cur.valueStart, end)));
  }
  return out;
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

/**
 * A JSON validator over bytes (RFC 8259) that builds nothing: it says whether the text parses and
 * what its top level is (an array and how many items, whether each is an object). The decode step
 * keeps the client's bytes when an upload is valid, so it needs the verdict, not the values, and
 * this costs a fraction of `JSON.parse` and none of its garbage.
 *
 * It accepts exactly what `JSON.parse(bytes.toString('utf8'))` accepts (property-tested against it):
 * bytes of 0x80 and above are taken as they are inside strings (toString would have replaced an
 * invalid sequence there with U+FFFD, which JSON.parse also takes) and refused outside them.
 */
import { nativeJson } from './json-native.js';

export type JsonScan =
  | { readonly ok: true; readonly top: 'array' | 'object' | 'other'; readonly items: number; readonly allObjects: boolean }
  | { readonly ok: false; readonly at: number };

const TOPS = ['other', 'array', 'object'] as const;
const result = new Float64Array(5);

/** The C scanner (native/json.c) where it is built, else the same scanner in JavaScript. */
export function scanJson(b: Uint8Array): JsonScan {
  if (nativeJson === null) return scanJsonJs(b);
  nativeJson.scan(b, result);
  if (result[0] !== 1) return { ok: false, at: result[4] ?? 0 };
  return { ok: true, top: TOPS[result[1] ?? 0] ?? 'other', items: result[2] ?? 0, allObjects: result[3] === 1 };
}

const ARRAY = 1;
const OBJECT = 2;

/** What the scanner expects next. */
const VALUE = 0; // a value (after ':' or ',' in an array, or at the start)
const VALUE_OR_END = 1; // a value or ']' (just after '[')
const KEY_OR_END = 2; // a key or '}' (just after '{')
const KEY = 3; // a key (after ',' in an object)
const AFTER = 4; // ',' or the container's closer, or the end of the text

/** The scanner in JavaScript: the fallback without the addon, and the addon's reference in tests. */
export function scanJsonJs(b: Uint8Array): JsonScan {
  const n = b.length;
  let stack = new Uint8Array(32);
  let depth = 0;
  let i = 0;
  let state = VALUE;
  let top = 0;
  let items = 0;
  let allObjects = true;
  for (;;) {
    while (i < n) {
      const w = b[i] as number;
      if (w === 0x20 || w === 0x0a || w === 0x0d || w === 0x09) i++;
      else break;
    }
    if (state === AFTER) {
      if (depth === 0) {
        if (i !== n) return { ok: false, at: i };
        return { ok: true, top: top === 0x5b ? 'array' : top === 0x7b ? 'object' : 'other', items, allObjects };
      }
      if (i >= n) return { ok: false, at: i };
      const c = b[i] as number;
      const inside = stack[depth - 1];
      if (c === 0x2c) {
        i++;
        state = inside === ARRAY ? VALUE : KEY;
      } else if ((inside === ARRAY && c === 0x5d) || (inside === OBJECT && c === 0x7d)) {
        i++;
        depth--;
      } else {
        return { ok: false, at: i };
      }
      continue;
    }
    if (i >= n) return { ok: false, at: i };
    const c = b[i] as number;
    if ((state === KEY_OR_END && c === 0x7d) || (state === VALUE_OR_END && c === 0x5d)) {
      i++;
      depth--;
      state = AFTER;
      continue;
    }
    if (state === KEY_OR_END || state === KEY) {
      if (c !== 0x22) return { ok: false, at: i };
      i = scanString(b, i + 1);
      if (i < 0) return { ok: false, at: -i - 1 };
      while (i < n) {
        const w = b[i] as number;
        if (w === 0x20 || w === 0x0a || w === 0x0d || w === 0x09) i++;
        else break;
      }
      if (b[i] !== 0x3a) return { ok: false, at: i };
      i++;
      state = VALUE;
      continue;
    }
    // A value.
    if (depth === 0) top = c;
    else if (depth === 1 && top === 0x5b) {
      items++;
      if (c !== 0x7b) allObjects = false;
    }
    state = AFTER;
    if (c === 0x7b || c === 0x5b) {
      if (depth === stack.length) {
        const grown = new Uint8Array(stack.length * 2);
        grown.set(stack);
        stack = grown;
      }
      stack[depth++] = c === 0x7b ? OBJECT : ARRAY;
      state = c === 0x7b ? KEY_OR_END : VALUE_OR_END;
      i++;
    } else if (c === 0x22) {
      i = scanString(b, i + 1);
      if (i < 0) return { ok: false, at: -i - 1 };
    } else if (c === 0x74) {
      if (!word(b, i, TRUE)) return { ok: false, at: i };
      i += 4;
    } else if (c === 0x66) {
      if (!word(b, i, FALSE)) return { ok: false, at: i };
      i += 5;
    } else if (c === 0x6e) {
      if (!word(b, i, NULL)) return { ok: false, at: i };
      i += 4;
    } else {
      i = scanNumber(b, i);
      if (i < 0) return { ok: false, at: -i - 1 };
    }
  }
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function word(b: Uint8Array, i: number, w: number[]): boolean {
  for (let k = 0; k < w.length; k++) if (b[i + k] !== w[k]) return false;
  return true;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

/** 1 for the bytes that end a run of plain string bytes: '"', '\\' and the control characters. */
const STRING_STOP = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1;
STRING_STOP[0x22] = 1;
STRING_STOP[0x5c] = 1;

/** From just after the opening quote: the index after the closing quote, or -(where it failed) - 1. */
function scanString(b: Uint8Array, i: number): number {
  const n = b.length;
  while (i < n) {
    while (i < n && STRING_STOP[b[i] as number] === 0) i++;
    if (i >= n) break;
    const c = b[i] as number;
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      const e = b[i + 1];
      if (e === 0x75) {
        if (!(isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) && isHex(b[i + 5]))) return -i - 1;
        i += 6;
      } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        i += 2;
      } else {
        return -i - 1;
      }
    } else if (c < 0x20) {
      return -i - 1;
    } else {
      i++;
    }
  }
  return -n - 1;
}

function digits(b: Uint8Array, i: number): number {
  while (i < b.length) {
    const c = b[i] as number;
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  return i;
}

/** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?: the index after it, or -(where it failed) - 1. */
function scanNumber(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d) i++;
  const first = b[i];
  if (first === 0x30) i++;
  else if (first !== undefined && first >= 0x31 && first <= 0x39) i = digits(b, i + 1);
  else return -i - 1;
  if (b[i] === 0x2e) {
    const j = digits(b, i + 1);
    if (j === i + 1) return -j - 1;
    i = j;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    const j = digits(b, i);
    if (j === i) return -j - 1;
    i = j;
  }
  return i;
}

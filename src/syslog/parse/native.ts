/**
 * The CEF fast path in C (native/cef.c, addon portcullis_cef), loaded once per pool thread. It
 * takes a whole block per call and hands back each message it does not take (fast.ts and then the
 * plain parser read those). Without the addon (no compiler on the machine, another platform) the
 * collector runs the same path in JavaScript (fast.ts): slower, the same records.
 * PORTCULLIS_CEF_ADDON names the addon file to load instead (the sanitizer build in CI); set empty,
 * it turns the native path off.
 */
import { CEF_COLUMNS } from './columns.js';
import { loadOptionalAddon } from '../../util/addon.js';

export interface CefAddon {
  init(keys: string[], columnJson: string[], types: number[]): void;
  writeBlock(
    input: Uint8Array,
    pos: number,
    end: number,
    newline: boolean,
    out: Uint8Array,
    outLen: number,
    inEntry: number,
    max: number,
    prefix: Uint8Array,
    collector: Uint8Array,
    source: Uint8Array,
    dropMask: number,
    maxSeverity: number,
    result: Float64Array,
  ): void;
}

/** result[] slots and R_STATUS values, as enum slot and enum status in native/cef.c. */
export const R_STATUS = 0;
export const R_POS = 1;
export const R_OUT_LEN = 2;
export const R_IN_ENTRY = 3;
export const R_RECORDS = 4;
export const R_MESSAGES = 5;
export const R_FILTERED = 6;
export const R_MSG_START = 7;
export const R_MSG_END = 8;
export const RESULT_SLOTS = 9;
export const S_DONE = 0;
export const S_DECLINED = 1;
export const S_FULL = 2;
export const S_REST = 3;

const TYPE_CODES = { string: 0, int: 1, long: 2, real: 3, datetime: 3 } as const;

function isCefAddon(m: unknown): m is CefAddon {
  return typeof m === 'object' && m !== null && typeof (m as CefAddon).init === 'function' && typeof (m as CefAddon).writeBlock === 'function';
}

const loaded = loadOptionalAddon('portcullis_cef', 'PORTCULLIS_CEF_ADDON', (m): CefAddon | string => {
  if (!isCefAddon(m)) return 'not the CEF addon (no init/writeBlock): rebuild with npm run build';
  const keys = [...CEF_COLUMNS.keys()];
  const columns = [...CEF_COLUMNS.values()];
  m.init(
    keys,
    columns.map(([column]) => `,${JSON.stringify(column)}:`),
    columns.map(([, type]) => TYPE_CODES[type]),
  );
  return m;
});

/** The addon, or null (then `nativeCefError` says why). */
export const nativeCef: CefAddon | null = loaded.addon;
export const nativeCefError: string = loaded.reason;

/** For `portcullis info`: the file the addon was loaded from, or why the JavaScript path runs. */
export function nativeCefStatus(): { available: boolean; path: string; reason: string } {
  return { available: nativeCef !== null, path: loaded.path, reason: loaded.reason };
}

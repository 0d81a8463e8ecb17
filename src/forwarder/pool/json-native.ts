/**
 * The JSON validator in C (native/json.c, addon portcullis_json), loaded once per thread that
 * decodes uploads. json-scan.ts is the same scanner in JavaScript: the fallback where the addon
 * is not built (no compiler, another platform), and the reference the tests hold the addon to.
 * PORTCULLIS_JSON_ADDON names the addon file to load instead (the sanitizer build in CI); set
 * empty, it turns the native path off.
 */
import { loadOptionalAddon } from '../../util/addon.js';

export interface JsonAddon {
  /** Fills result (5 slots): ok, top (0 other, 1 array, 2 object), items, all objects, where it failed. */
  scan(input: Uint8Array, result: Float64Array): void;
}

function isJsonAddon(m: unknown): m is JsonAddon {
  return typeof m === 'object' && m !== null && typeof (m as JsonAddon).scan === 'function';
}

const loaded = loadOptionalAddon('portcullis_json', 'PORTCULLIS_JSON_ADDON', (m): JsonAddon | string =>
  isJsonAddon(m) ? m : 'not the JSON addon (no scan): rebuild with npm run build',
);

/** The addon, or null (then nativeJsonStatus().reason says why). */
export const nativeJson: JsonAddon | null = loaded.addon;

/** For `portcullis info`: the file the addon was loaded from, or why the JavaScript scanner runs. */
export function nativeJsonStatus(): { available: boolean; path: string; reason: string } {
  return { available: nativeJson !== null, path: loaded.path, reason: loaded.reason };
}

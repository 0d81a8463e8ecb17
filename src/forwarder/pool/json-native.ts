/**
 * The JSON validator in C (native/json.c, addon portcullis_json), loaded once per thread that
 * decodes uploads. json-scan.ts is the same scanner in JavaScript: the fallback where the addon
 * is not built (no compiler, another platform), and the reference the tests hold the addon to.
 * PORTCULLIS_JSON_ADDON names the addon file to load instead (the sanitizer build in CI); set
 * empty, it turns the native path off.
 */
import { addonCandidates, loadAddon } from '../../util/addon.js';

export interface JsonAddon {
  /** Fills result (5 slots): ok, top (0 other, 1 array, 2 object), items, all objects, where it failed. */
  scan(input: Uint8Array, result: Float64Array): void;
}

function isJsonAddon(m: unknown): m is JsonAddon {
  return typeof m === 'object' && m !== null && typeof (m as JsonAddon).scan === 'function';
}

function load(): { addon: JsonAddon | null; error: string; path: string } {
  const override = process.env.PORTCULLIS_JSON_ADDON;
  if (override === '') return { addon: null, error: 'turned off (PORTCULLIS_JSON_ADDON is empty)', path: '' };
  if (process.platform !== 'linux') return { addon: null, error: `not built for ${process.platform}`, path: '' };
  const loaded = loadAddon(override ? [override] : addonCandidates('portcullis_json'), (m): JsonAddon | string =>
    isJsonAddon(m) ? m : 'not the JSON addon (no scan): rebuild with npm run build',
  );
  return loaded.addon ? { addon: loaded.addon, error: '', path: loaded.path } : { addon: null, error: loaded.error, path: '' };
}

const loaded = load();

/** The addon, or null (then nativeJsonStatus().reason says why). */
export const nativeJson: JsonAddon | null = loaded.addon;

/** For `portcullis info`: the file the addon was loaded from, or why the JavaScript scanner runs. */
export function nativeJsonStatus(): { available: boolean; path: string; reason: string } {
  return { available: nativeJson !== null, path: loaded.path, reason: loaded.error };
}

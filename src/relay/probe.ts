import { existsSync } from 'node:fs';
import { addonCandidates } from '../util/addon.js';

/**
 * Where the native relay addon is looked for, best first: PORTCULLIS_RELAY_ADDON when set
 * (test/sanitize.sh runs the tests against the AddressSanitizer build in build/Sanitize/ that way,
 * leaving the normal build alone, and then nothing else is tried), else the prebuilt addon shipped
 * in the npm tarball, then the one `npm run build` made (src/util/addon.ts).
 */
export const ADDON_CANDIDATES: string[] = process.env.PORTCULLIS_RELAY_ADDON ? [process.env.PORTCULLIS_RELAY_ADDON] : addonCandidates('portcullis_relay');

/** The addon file the relay loads first (the build's path when none exists, for messages and tests). */
export const ADDON_PATH: string =
  ADDON_CANDIDATES.find((p) => existsSync(p)) ?? process.env.PORTCULLIS_RELAY_ADDON ?? addonCandidates('portcullis_relay')[1] ?? '';

/**
 * Whether the native relay is built for this platform, found WITHOUT loading it: for the CLI and
 * the config store, which check and edit files and must not load native code. Import this module
 * directly, not through relay/index.ts (that loads the addon).
 */
export function nativeRelayBuilt(): { available: boolean; reason: string } {
  if (process.platform !== 'linux') return { available: false, reason: `not built for ${process.platform}` };
  return ADDON_CANDIDATES.some((p) => existsSync(p)) ? { available: true, reason: '' } : { available: false, reason: 'not built (npm run build)' };
}

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Where `npm run build` puts the native relay addon (the same path from src/ and dist/), unless
 * PORTCULLIS_RELAY_ADDON names another build of it: test/sanitize.sh runs the tests against the
 * AddressSanitizer build in build/Sanitize/ that way, leaving the normal build alone.
 */
export const ADDON_PATH = process.env.PORTCULLIS_RELAY_ADDON || fileURLToPath(new URL('../../build/Release/portcullis_relay.node', import.meta.url));

/**
 * Whether the native relay is built for this platform, found WITHOUT loading it: for the CLI and
 * the config store, which check and edit files and must not load native code. Import this module
 * directly, not through relay/index.ts (that loads the addon).
 */
export function nativeRelayBuilt(): { available: boolean; reason: string } {
  if (process.platform !== 'linux') return { available: false, reason: `not built for ${process.platform}` };
  return existsSync(ADDON_PATH) ? { available: true, reason: '' } : { available: false, reason: 'not built (npm run build)' };
}

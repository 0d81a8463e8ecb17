import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the native relay addon (the same path from src/ and dist/). */
export const ADDON_PATH = fileURLToPath(new URL('../../build/Release/portcullis_relay.node', import.meta.url));

/**
 * Whether the native relay is built for this platform, found WITHOUT loading it: for the CLI and
 * the config store, which check and edit files and must not load native code. Import this module
 * directly, not through relay/index.ts (that loads the addon).
 */
export function nativeRelayBuilt(): { available: boolean; reason: string } {
  if (process.platform !== 'linux') return { available: false, reason: `not built for ${process.platform}` };
  return existsSync(ADDON_PATH) ? { available: true, reason: '' } : { available: false, reason: 'not built (npm run build)' };
}

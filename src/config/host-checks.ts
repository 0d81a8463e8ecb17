import type { SemanticCheck } from './load.js';

/** Whether the native tunnel relay can run here, and if not, why; found out by the caller. */
export interface NativeRelayFact {
  available: boolean;
  reason: string;
}

/**
 * `proxy.relay: native` is a promise the start-up must keep or refuse. The gateway passes what it
 * found loading the addon; the CLI and the config store pass what they see without loading it
 * (src/relay/probe.ts), so editing a file never loads native code.
 */
export function nativeRelayCheck(fact: NativeRelayFact): SemanticCheck {
  return (config) => {
    if (config.proxy?.relay !== 'native' || fact.available) return [];
    return [{ path: ['proxy', 'relay'], message: `native relay not available here (${fact.reason}); build it with npm run build, or use auto` }];
  };
}

/**
 * Whether the native tunnel relay is built here, for tests that are about it. CI builds it, so
 * under CI=true a missing build throws (the file fails, visibly); elsewhere the tests skip with
 * the reason as their skip note (`ctx.skip(!native.available, native.skipNote)`).
 */
import { nativeRelayStatus } from '../../src/relay/index.js';

export interface NativeRelayForTests {
  available: boolean;
  /** Shown next to each skipped test. */
  skipNote: string;
}

export function requireNativeRelay(): NativeRelayForTests {
  const status = nativeRelayStatus();
  if (status.available) return { available: true, skipNote: '' };
  const why = `native relay not built (${status.reason}); run \`npm ci\` or \`npm run build\` with a C compiler`;
  if (process.env.CI === 'true') throw new Error(`${why}: required under CI=true, where CI builds it`);
  console.warn(`SKIPPING native-relay tests: ${why}`);
  return { available: false, skipNote: why };
}

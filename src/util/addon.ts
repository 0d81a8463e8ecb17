import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { errorMessage, firstLine } from './errors.js';

/**
 * Where this package's native addons are, best first (the prebuildify / node-gyp-build layout):
 *  1. prebuilds/<platform>-<arch>/<name>.napi.node: shipped in the npm tarball, built once with
 *     N-API, so it loads in Node 20, 22 and 24 and a server without a compiler still gets it;
 *  2. build/Release/<name>.node: built on this machine by `npm install` / `npm run build`.
 * Relative to the package root: the nearest directory above this module with a package.json
 * (src/util and dist/util are two levels below it; the emulator's build, dist-emulator/src/util,
 * three).
 */
export function addonCandidates(name: string): string[] {
  const root = packageRoot;
  return [
    fileURLToPath(new URL(`prebuilds/${process.platform}-${process.arch}/${name}.napi.node`, root)),
    fileURLToPath(new URL(`build/Release/${name}.node`, root)),
  ];
}

const packageRoot: URL = (() => {
  for (const up of ['../../', '../../../', '../../../../']) {
    const dir = new URL(up, import.meta.url);
    if (existsSync(new URL('package.json', dir))) return dir;
  }
  return new URL('../../', import.meta.url);
})();

/** The first candidate that exists, without loading it (for commands that must not load native code). */
export function findAddon(name: string): string | null {
  return addonCandidates(name).find((p) => existsSync(p)) ?? null;
}

export type AddonLoad<T> = { addon: T; path: string } | { addon: null; error: string };

/**
 * Load the first candidate that loads and that `accept` takes (a prebuild for another libc, or
 * a stale build, is passed over for the next one). `error` says why none did: the first
 * failure, or that none is built.
 */
export function loadAddon<T>(paths: string[], accept: (loaded: unknown) => T | string): AddonLoad<T> {
  const require = createRequire(import.meta.url);
  let firstError = '';
  for (const path of paths) {
    if (!existsSync(path)) continue;
    try {
      const checked = accept(require(path));
      if (typeof checked !== 'string') return { addon: checked, path };
      firstError ||= checked;
    } catch (err) {
      firstError ||= firstLine(errorMessage(err));
    }
  }
  return { addon: null, error: firstError || 'not built (npm run build)' };
}

/**
 * An addon the gateway can run without (a JavaScript path does the same work): `envVar` names
 * another file to load instead (the sanitizer build in CI), and set empty turns the addon off.
 * Linux only, as binding.gyp builds it. `reason` says why it is not loaded ('' when it is).
 */
export function loadOptionalAddon<T>(name: string, envVar: string, accept: (loaded: unknown) => T | string): { addon: T | null; path: string; reason: string } {
  const override = process.env[envVar];
  if (override === '') return { addon: null, path: '', reason: `turned off (${envVar} is empty)` };
  if (process.platform !== 'linux') return { addon: null, path: '', reason: `not built for ${process.platform}` };
  const loaded = loadAddon(override ? [override] : addonCandidates(name), accept);
  return 'error' in loaded ? { addon: null, path: '', reason: loaded.error } : { addon: loaded.addon, path: loaded.path, reason: '' };
}

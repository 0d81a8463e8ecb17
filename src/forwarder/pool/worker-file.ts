import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A compiled worker script of this folder (e.g. 'worker.js'). Under vitest the pool's modules are
 * the .ts sources with no .js beside them: the build in dist/ is used (npm test builds it first).
 */
export function compiledWorkerFile(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const sibling = join(here, name);
  if (existsSync(sibling)) return sibling;
  const built = sibling.replace(/([\\/])src([\\/]forwarder[\\/]pool[\\/])/, '$1dist$2');
  if (existsSync(built)) return built;
  throw new Error(`forwarder worker script not found (${sibling}, ${built}): run npm run build`);
}

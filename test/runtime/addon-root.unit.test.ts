import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

/**
 * The native addons are found from the package root, whichever build imports the loader: the
 * gateway's (src/util, dist/util: two levels down) and the bench emulator's (dist-emulator/src/util:
 * three). Until 2026-12-03 the emulator's build looked one level too low, found nothing, and its
 * count mode ran the JavaScript fallbacks in every benchmark.
 */
const root = mkdtempSync(join(tmpdir(), 'pcl-addon-root-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the loader (and the one module it imports) at `rel` below a package root. */
function loaderAt(rel: string): string {
  const dir = join(root, rel);
  mkdirSync(dir, { recursive: true });
  for (const f of ['addon.ts', 'errors.ts']) copyFileSync(new URL(`../../src/util/${f}`, import.meta.url), join(dir, f));
  return join(dir, 'addon.ts');
}

it('looks in <package root>/build/Release from two and from three levels below the root', async () => {
  writeFileSync(join(root, 'package.json'), '{"name":"portcullis"}');
  for (const rel of ['dist/util', 'dist-emulator/src/util']) {
    const { addonCandidates } = (await import(loaderAt(rel))) as typeof import('../../src/util/addon.js');
    expect(addonCandidates('portcullis_json')).toEqual([
      join(root, `prebuilds/${process.platform}-${process.arch}/portcullis_json.napi.node`),
      join(root, 'build/Release/portcullis_json.node'),
    ]);
  }
});

/**
 * scripts/install.sh's checks that run before it changes anything: a Node.js older than 20.18
 * (Debian 12's own nodejs is 18) stops it with exit 2 and says where to get a current one, without
 * downloading anything. The install itself (user, files, unit, start) was run on a clean Debian
 * chroot: docs/operator-guide.md, "Installing on a clean Debian".
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireBinary, run } from '../helpers/system.js';

const SCRIPT = resolve(import.meta.dirname, '../../scripts/install.sh');
const bash = requireBinary('bash');
const dir = mkdtempSync(join(tmpdir(), 'pcl-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `bash install.sh args` with PATH=dir:PATH, where dir holds a fake `node` printing `version`. */
async function withNode(version: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = mkdtempSync(join(dir, 'bin-'));
  writeFileSync(join(bin, 'node'), `#!/bin/sh\necho ${version}\n`);
  chmodSync(join(bin, 'node'), 0o755);
  const script = `PATH=${bin}:/usr/sbin:/usr/bin:/sbin:/bin exec bash ${SCRIPT} ${args.join(' ')}`;
  return run(bash ?? 'bash', ['-c', script]);
}

describe.skipIf(!bash)('scripts/install.sh', () => {
  it("refuses Debian 12's Node.js 18 with exit 2 and says how to get 22 (NodeSource or the official tarball)", async () => {
    const r = await withNode('18.19.0', ['--tarball', '/nonexistent.tgz']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('found Node.js 18.19.0');
    expect(r.stderr).toContain('need 20.18.0 or later');
    expect(r.stderr).toContain('https://deb.nodesource.com/setup_22.x');
    expect(r.stderr).toContain('https://nodejs.org/en/download');
  });

  it('takes 20.17 as too old and 20.18 as enough (then stops at the next check: the tarball)', async () => {
    expect((await withNode('20.17.0', ['--tarball', '/nonexistent.tgz'])).code).toBe(2);
    const ok = await withNode('20.18.0', ['--tarball', '/nonexistent.tgz']);
    expect(ok.stderr).not.toContain('need 20.18.0');
  });

  it('--help prints the usage; an unknown argument exits 2', async () => {
    const help = await withNode('22.12.0', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--uninstall [--purge]');
    expect((await withNode('22.12.0', ['--frobnicate'])).code).toBe(2);
  });
});

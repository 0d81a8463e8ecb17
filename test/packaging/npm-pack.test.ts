/**
 * The npm tarball as a server gets it: `npm pack` (the real prepack: build, then the addons copied
 * to prebuilds/linux-x64/) in a staging copy of the repository, so the working tree is left alone;
 * then `npm install --global --prefix` of that tarball with a PATH that has node, npm and sh but no
 * C compiler, make or python3, as on a gateway server. `portcullis info` must then report the
 * native relay and the notify addon, loaded from the prebuilt files (no build/ directory exists).
 * The dependencies come from npm's cache (--prefer-offline; `npm ci` filled it).
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'pcl-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * npm's own script: the one running this suite (npm test), else the one installed beside this
 * node, else the `npm` on PATH (CI runs Node 22 and 24 from the `node` package, which has no npm).
 */
function npmCli(): string | null {
  const onPath = (process.env.PATH ?? '')
    .split(':')
    .map((d) => join(d, 'npm'))
    .filter((p) => existsSync(p))
    .map((p) => realpathSync(p));
  const candidates = [process.env.npm_execpath, join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'), ...onPath];
  return candidates.find((p): p is string => typeof p === 'string' && p.endsWith('.js') && existsSync(p)) ?? null;
}
const npm = npmCli();
if (!npm && process.env.CI === 'true') throw new Error('npm-cli.js not found beside this node: the packaging test needs npm');

function exec(file: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: 400_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe.skipIf(!npm || process.platform !== 'linux' || process.arch !== 'x64')('npm pack: the tarball a server without a compiler installs', () => {
  it(
    'ships dist, the bin, config, systemd, docs, the install script and prebuilt N-API addons; installs and loads them without a compiler',
    { timeout: 600_000 },
    async () => {
      // Staging: the files `npm pack` reads and builds from, and the repository's node_modules (tsc, node-gyp's inputs).
      const stage = join(work, 'stage');
      mkdirSync(stage);
      for (const f of ['package.json', 'README.md', 'tsconfig.json', 'binding.gyp', 'src', 'native', 'config', 'systemd', 'docs', 'scripts']) {
        cpSync(join(ROOT, f), join(stage, f), { recursive: true });
      }
      symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'));
      const out = join(work, 'out');
      mkdirSync(out);
      const packed = await exec(process.execPath, [npm ?? '', 'pack', '--pack-destination', out, '--json'], { cwd: stage });
      expect(packed.code, packed.stderr).toBe(0);
      const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
      const files = (info?.files ?? []).map((f) => f.path);
      for (const want of [
        'dist/cli/main.js',
        'config/portcullis.yaml',
        'systemd/portcullis.service',
        'docs/operator-guide.md',
        'scripts/install.sh',
        'prebuilds/linux-x64/portcullis_relay.napi.node',
        'prebuilds/linux-x64/portcullis_cef.napi.node',
        'prebuilds/linux-x64/portcullis_json.napi.node',
        'prebuilds/linux-x64/portcullis_deflate.napi.node',
        'prebuilds/linux-x64/portcullis_notify.napi.node',
      ]) {
        expect(files).toContain(want);
      }
      expect(files.filter((f) => f.startsWith('build/') || f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
      // postpack: the staging tree keeps no prebuilds (a working tree loads its own build).
      expect(existsSync(join(stage, 'prebuilds'))).toBe(false);

      // A PATH with node, npm and sh only: no cc, gcc, g++, make or python3 for node-gyp.
      const bin = join(work, 'bin');
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, 'node'));
      symlinkSync(npm ?? '', join(bin, 'npm'));
      symlinkSync('/bin/sh', join(bin, 'sh'));
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin };
      delete env.npm_config_nodedir;
      const compilers = await exec('/bin/sh', ['-c', 'command -v cc gcc g++ c++ make python3'], { cwd: work, env });
      expect(compilers.stdout).toBe('');

      const prefix = join(work, 'prefix');
      const tarball = join(out, info?.filename ?? 'missing.tgz');
      const installed = await exec(join(bin, 'npm'), ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
        cwd: work,
        env,
      });
      expect(installed.code, installed.stderr).toBe(0);
      const pkg = join(prefix, 'lib', 'node_modules', 'portcullis');
      expect(readdirSync(pkg)).not.toContain('build');

      const shown = await exec(join(prefix, 'bin', 'portcullis'), ['info'], { cwd: work, env });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(`relay      native (${join(pkg, 'prebuilds', 'linux-x64', 'portcullis_relay.napi.node')})`);
      expect(shown.stdout).toContain(`cef        native (${join(pkg, 'prebuilds', 'linux-x64', 'portcullis_cef.napi.node')})`);
      expect(shown.stdout).toContain(`json       native (${join(pkg, 'prebuilds', 'linux-x64', 'portcullis_json.napi.node')})`);
      expect(shown.stdout).toContain(`gzip       native (${join(pkg, 'prebuilds', 'linux-x64', 'portcullis_deflate.napi.node')})`);
      expect(shown.stdout).toContain(`sd_notify  native (${join(pkg, 'prebuilds', 'linux-x64', 'portcullis_notify.napi.node')})`);
    },
  );
});

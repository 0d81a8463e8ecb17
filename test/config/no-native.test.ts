// Checking or editing a config file must not load the native relay addon: the CLI edits files on
// machines (and in containers) where the addon may be missing, built for another Node, or where
// loading it is not wanted. Observed for real: each child process writes the shared objects it has
// loaded (process.report) when it exits, and we look for the addon there.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ADDON_PATH, nativeRelayBuilt } from '../../src/relay/probe.js';

const dist = (p: string): string => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pcl-nonative-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const preload = join(dir, 'report-on-exit.mjs');
writeFileSync(
  preload,
  `import { writeFileSync } from 'node:fs';
process.on('exit', () => writeFileSync(process.env.PCL_SO_REPORT, JSON.stringify(process.report.getReport().sharedObjects)));
`,
);

function runObserved(args: string[]): { status: number | null; stdout: string; stderr: string; sharedObjects: string[] } {
  const report = join(dir, `so-${Math.random().toString(36).slice(2)}.json`);
  const r = spawnSync(process.execPath, ['--import', preload, ...args], { encoding: 'utf8', env: { ...process.env, PCL_SO_REPORT: report } });
  const sharedObjects = JSON.parse(readFileSync(report, 'utf8')) as string[];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, sharedObjects };
}

const isAddon = (so: string): boolean => so.endsWith('portcullis_relay.node');
const built = nativeRelayBuilt().available;
const needNative = process.env.CI === 'true' || built;

describe('the CLI and the config store load no native code', () => {
  it.runIf(needNative)('the observation works: importing the relay module does load the addon', () => {
    expect(built).toBe(true);
    const r = runObserved(['--input-type=module', '-e', `await import(${JSON.stringify(dist('relay/index.js'))})`]);
    expect(r.status).toBe(0);
    expect(r.sharedObjects.filter(isAddon)).toEqual([ADDON_PATH]);
  });

  it('portcullis check-config, valid and invalid files, relay: native included', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, readFileSync(new URL('../../config/portcullis.yaml', import.meta.url)));
    const ok = runObserved([dist('cli/main.js'), 'check-config', good]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`OK ${good}`);
    expect(ok.sharedObjects.filter(isAddon)).toEqual([]);

    const native = join(dir, 'native.yaml');
    writeFileSync(native, 'proxy:\n  relay: native\n  mode: maybe\n');
    const bad = runObserved([dist('cli/main.js'), 'check-config', native]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('proxy.mode');
    // Where the addon is built, relay: native is fine; where not, the probe says so without loading it.
    if (built) expect(bad.stderr).not.toContain('proxy.relay');
    else expect(bad.stderr).toMatch(/proxy\.relay: native relay not available/);
    expect(bad.sharedObjects.filter(isAddon)).toEqual([]);
  });

  it('ConfigStore: open, edit, validate and save', () => {
    const file = join(dir, 'store.yaml');
    writeFileSync(file, '# mine\nproxy:\n  mode: enforce\n');
    const script = `
      const { ConfigStore, nativeRelayCheck } = await import(${JSON.stringify(dist('config/index.js'))});
      const { nativeRelayBuilt } = await import(${JSON.stringify(dist('relay/probe.js'))});
      const store = await ConfigStore.open(${JSON.stringify(file)}, { checks: [nativeRelayCheck(nativeRelayBuilt())] });
      store.set(['proxy', 'mode'], 'report');
      const r = await store.save();
      if (!r.ok) throw new Error(JSON.stringify(r));`;
    const r = runObserved(['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('# mine\nproxy:\n  mode: report\n');
    expect(r.sharedObjects.filter(isAddon)).toEqual([]);
  });
});

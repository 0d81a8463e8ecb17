import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A tmpfs of `size` (mount's size=, e.g. '1m') mounted at a fresh directory, for real ENOSPC
 * tests: mounting needs root. null, with a warning that `what` is skipped, when this machine does
 * not let us; under CI=true that is an error. `cleanup` unmounts it (lazily: a spool may still hold
 * a file) and removes the directory; `resize` grows or shrinks it in place.
 */
export function mountTmpfs(size: string, what: string): { mnt: string; resize: (size: string) => void; cleanup: () => void } | null {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-tmpfs-'));
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const why = `cannot mount a tmpfs (${(err as Error).message.split('\n')[0]}): needs root`;
    if (process.env.CI === 'true') throw new Error(`${why}; CI=true requires ${what}`);
    console.warn(`SKIPPING ${what}: ${why}`);
    return null;
  }
  return {
    mnt,
    resize: (to) => void execFileSync('mount', ['-o', `remount,size=${to}`, mnt], { stdio: 'pipe' }),
    cleanup: () => {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

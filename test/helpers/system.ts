/** System programs the tests drive. Missing under CI=true is a failure, elsewhere a loud skip. */
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';

const SEARCH = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/bin', '/sbin'];

export function findBinary(name: string): string | null {
  for (const dir of SEARCH) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return null;
}

/** The binary's path; throws under CI when missing; null (skip) elsewhere. */
export function requireBinary(name: string): string | null {
  const p = findBinary(name);
  if (p) return p;
  if (process.env.CI === 'true') throw new Error(`${name} is required under CI=true but not installed (bash test/system-deps.sh)`);
  console.warn(`SKIPPING tests that need ${name}: not installed (bash test/system-deps.sh installs it)`);
  return null;
}

/**
 * The environment for a system program: ours, without LD_PRELOAD. test/sanitize.sh preloads the
 * AddressSanitizer runtime for Node (the relay addon needs it first in the process); curl, which
 * is not built with it, deadlocks in setlocale() at start under it.
 */
function systemEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

export function run(file: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: systemEnv() }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

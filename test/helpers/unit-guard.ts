/**
 * Setup file of the `unit` project: a unit test that starts a process fails at once, naming the
 * rule, instead of slowly turning the inner loop into an integration run. Such a test belongs in
 * a file named *.test.ts (the integration project).
 */
import { vi } from 'vitest';

vi.mock('node:child_process', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:child_process')>();
  const refuse = (name: string) => (): never => {
    throw new Error(`child_process.${name} in a unit test: unit tests run in-process only; name the file *.test.ts (integration)`);
  };
  const guarded = {
    ...real,
    spawn: refuse('spawn'),
    spawnSync: refuse('spawnSync'),
    exec: refuse('exec'),
    execSync: refuse('execSync'),
    execFile: refuse('execFile'),
    execFileSync: refuse('execFileSync'),
    fork: refuse('fork'),
  };
  return { ...guarded, default: guarded };
});

import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit`: files named *.unit.test.ts — in-process only (no child processes, no
 * system binaries, no network beyond 127.0.0.1 inside the test process), the inner loop:
 * `npm run test:unit`. `integration`: every other test file — real gateway processes, real
 * clients, Prometheus, promtool. `npm test` (what CI runs) runs both.
 */
export default defineConfig({
  test: {
    // Integration tests bind real sockets and spawn real processes: keep them in separate
    // processes, and limit parallelism to the 2 cores of the machines we run on.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    // FC_SEED / FC_PATH replay a failed fast-check property (see the file).
    setupFiles: ['test/helpers/fc-seed.ts'],
    projects: [
      {
        extends: true,
        // Threads start faster than forks, and nothing here needs a process of its own.
        test: {
          name: 'unit',
          include: ['test/**/*.unit.test.ts'],
          pool: 'threads',
          // Appended to the shared setup file: child_process calls throw in unit tests.
          setupFiles: ['test/helpers/unit-guard.ts'],
        },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: ['test/**/*.unit.test.ts'] },
      },
    ],
  },
});

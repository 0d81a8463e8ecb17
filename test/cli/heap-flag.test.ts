import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { HEAP_GROWING_FLAG } from '../../src/cli/start.js';

/**
 * `portcullis start` sets a V8 flag at run time (src/cli/start.ts). V8 does not throw on a flag it
 * does not know: it prints "unrecognized flag" on stderr and goes on without it. CI runs this on
 * each Node the package supports, so a Node whose V8 dropped the flag fails here, not silently.
 */
function stderrOf(flag: string): string {
  const r = spawnSync(process.execPath, ['-e', `require('node:v8').setFlagsFromString(${JSON.stringify(flag)})`], { encoding: 'utf8', timeout: 20_000 });
  expect(r.status).toBe(0);
  return r.stderr;
}

it("the heap flag the gateway sets is one this Node's V8 knows", () => {
  expect(stderrOf(HEAP_GROWING_FLAG)).toBe('');
  // The check can fail: a flag V8 does not know is reported on stderr.
  expect(stderrOf(HEAP_GROWING_FLAG.replace('percent', 'percentage'))).toMatch(/unrecognized flag/);
});

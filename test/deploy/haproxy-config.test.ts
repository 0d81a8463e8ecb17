/**
 * docker/compose.ha.yaml mounts config/haproxy.cfg unchanged (the HA test runs it with its
 * addresses rewritten): the file as shipped must pass HAProxy's own check (`haproxy -c`, the
 * Debian package's HAProxy), and a broken copy must not.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireBinary, run } from '../helpers/system.js';

const haproxy = requireBinary('haproxy');
const reference = new URL('../../config/haproxy.cfg', import.meta.url);

async function check(file: string): Promise<{ status: number; output: string }> {
  const r = await run(haproxy ?? 'haproxy', ['-c', '-f', file]);
  return { status: r.code, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!haproxy)('config/haproxy.cfg as shipped (the file compose.ha.yaml mounts)', () => {
  it('passes haproxy -c', async () => {
    const r = await check(fileURLToPath(reference));
    expect(r.output).toContain('Configuration file is valid');
    expect(r.status).toBe(0);
  });

  it('a broken copy fails haproxy -c', async () => {
    const broken = join(mkdtempSync(join(tmpdir(), 'portcullis-haproxy-')), 'haproxy.cfg');
    writeFileSync(broken, readFileSync(reference, 'utf8').replace('balance leastconn', 'balance fewestconn'));
    expect((await check(broken)).status).not.toBe(0);
  });
});

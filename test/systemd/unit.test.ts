/**
 * The shipped systemd unit: systemd itself accepts it (`systemd-analyze verify`), its sandbox keeps
 * the exposure score the docs state (`systemd-analyze security`, offline), and the directories it
 * grants are the ones the default configuration writes to.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireBinary, run } from '../helpers/system.js';

const analyze = requireBinary('systemd-analyze');
const UNIT = fileURLToPath(new URL('../../systemd/portcullis.service', import.meta.url));
const SCHEMA = new URL('../../config/portcullis.schema.json', import.meta.url);
/** What README and docs/ha.md promise; lower is better. */
const DOCUMENTED_EXPOSURE = 1.6;

describe.skipIf(!analyze)('systemd/portcullis.service', () => {
  it('passes systemd-analyze verify with nothing to say', async () => {
    const r = await run(analyze ?? 'systemd-analyze', ['verify', UNIT]);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.code).toBe(0);
  });

  it(`keeps its sandbox: exposure ${DOCUMENTED_EXPOSURE} or better`, async () => {
    const r = await run(analyze ?? 'systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT]);
    const m = /Overall exposure level for portcullis\.service: (\d+\.\d+)/.exec(r.stdout + r.stderr);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m?.[1])).toBeLessThanOrEqual(DOCUMENTED_EXPOSURE);
  });

  it('tells systemd when it is ready (Type=notify, watchdog), as the static portcullis user, with one capability: binding ports below 1024', () => {
    const unit = readFileSync(UNIT, 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^WatchdogSec=\d+$/m);
    expect(unit).toMatch(/^User=portcullis$/m);
    expect(unit).not.toMatch(/^DynamicUser=yes$/m);
    // The forwarder's syslog listener on 514; nothing else.
    expect(unit.match(/^(?:AmbientCapabilities|CapabilityBoundingSet)=.*$/gm)).toEqual([
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    ]);
  });

  it('grants the state directory the default spool lives in, and no other writable path', () => {
    const unit = readFileSync(UNIT, 'utf8');
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    expect(unit).toMatch(/^StateDirectory=portcullis$/m);
    expect(unit).not.toMatch(/^ReadWritePaths=/m);
    // StateDirectory=portcullis is /var/lib/portcullis, writable by the dynamic user.
    const schema = readFileSync(SCHEMA, 'utf8');
    expect(schema).toContain('"default": "/var/lib/portcullis/spool"');
  });
});

/**
 * `portcullis doctor` knows the service presets: besides their exact names it checks the names the
 * Connected Machine agent is known to use under the preset's wildcards (gbl.his.arc.azure.us, ...),
 * which a wildcard alone would leave unchecked. Every name is mapped to 127.0.0.1 by dns.overrides,
 * so nothing leaves the machine: the preset (public addresses only) refuses each at the private-
 * address guard, which is enough to see which names were checked and why.
 */
import { describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor/index.js';
import { makeConfig } from '../policy/helpers.js';

describe('portcullis doctor with the azure-arc-usgov preset', () => {
  it('checks the exact names and the known names under the wildcards, and lists the wildcards as not checked', async () => {
    const names = [
      'aka.ms',
      'download.microsoft.com',
      'packages.microsoft.com',
      'login.microsoftonline.us',
      'pasff.usgovcloudapi.net',
      'management.usgovcloudapi.net',
      'gbl.his.arc.azure.us',
    ];
    const config = makeConfig({ presets: ['azure-arc-usgov'] });
    config.dns.overrides = Object.fromEntries(names.map((n) => [n, '127.0.0.1']));
    config.proxy.timeouts.dnsMs = 1000;
    const rows = await runDoctor(config, { hosts: [], extraCa: [], timeoutMs: 1000 });
    const byEndpoint = new Map(rows.map((r) => [r.endpoint, r]));
    expect(byEndpoint.get('gbl.his.arc.azure.us:443')).toMatchObject({ source: 'rule azure-arc-usgov/his (known name)', verdict: 'fail' });
    expect(byEndpoint.get('gbl.his.arc.azure.us:443')?.detail).toMatch(/private/i);
    expect(byEndpoint.get('management.usgovcloudapi.net:443')).toMatchObject({ source: 'rule azure-arc-usgov/arm', verdict: 'fail' });
    expect(byEndpoint.get('*.his.arc.azure.us')).toMatchObject({ verdict: 'unchecked' });
    expect(byEndpoint.get('*.guestconfiguration.azure.us')).toMatchObject({ verdict: 'unchecked' });
    expect(
      rows
        .filter((r) => r.verdict !== 'unchecked')
        .map((r) => r.endpoint.replace(/:443$/, ''))
        .sort(),
    ).toEqual([...names].sort());
  });
});

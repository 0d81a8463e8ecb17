import { describe, expect, it } from 'vitest';
import { compilePolicy, describePolicy, parseConnectAuthority, type Decision, type Policy } from '../../src/policy/index.js';
import { CLIENT, makeConfig, WS1, WS2 } from './helpers.js';

function at(policy: Policy, authority: string): Decision {
  return policy.decide({ target: parseConnectAuthority(authority), client: CLIENT });
}

function summary(d: Decision): string {
  return d.verdict === 'allow' ? `allow ${d.rule.name}` : `${d.verdict} ${d.reason}${d.rule ? ` ${d.rule.name}` : ''}`;
}

describe('exact, wildcard and template matching', () => {
  const policy = compilePolicy(
    makeConfig({
      workspaces: [{ id: WS1.toUpperCase(), region: 'westeurope' }],
      regions: ['eastus2'],
      rules: [
        { name: 'exact', hosts: ['crl.microsoft.com', 'Bücher.Example'] },
        { name: 'wild', hosts: ['*.pki.example.com', '*.ods.opinsights.azure.com.'] },
        { name: 'ws', hosts: ['{workspaceId}.oms.opinsights.azure.com'] },
        { name: 'region', hosts: ['{region}.handler.control.monitor.azure.com'] },
        { name: 'dce', hosts: ['*.{region}.ingest.monitor.azure.com'] },
      ],
    }),
  );

  it.each([
    // exact
    ['crl.microsoft.com:443', 'allow exact'],
    ['CRL.Microsoft.COM.:443', 'allow exact'],
    ['bücher.example:443', 'allow exact'],
    ['xn--bcher-kva.example:443', 'allow exact'],
    ['BÜCHER.example:443', 'allow exact'],
    ['a.crl.microsoft.com:443', 'deny host_not_allowed'],
    ['crl.microsoft.com.evil.com:443', 'deny host_not_allowed'],
    ['microsoft.com:443', 'deny host_not_allowed'],
    ['xcrl.microsoft.com:443', 'deny host_not_allowed'],
    // wildcard: any depth, never the bare suffix
    ['a.pki.example.com:443', 'allow wild'],
    ['a.b.c.pki.example.com:443', 'allow wild'],
    ['A.PKI.Example.Com.:443', 'allow wild'],
    ['pki.example.com:443', 'deny host_not_allowed'],
    ['apki.example.com:443', 'deny host_not_allowed'],
    ['a.pki.example.com.evil.com:443', 'deny host_not_allowed'],
    ['ods.opinsights.azure.com:443', 'deny host_not_allowed'],
    ['evilods.opinsights.azure.com:443', 'deny host_not_allowed'],
    ['ods.opinsights.azure.com.evil.com:443', 'deny host_not_allowed'],
    ['x.ods.opinsights.azure.com.evil.com:443', 'deny host_not_allowed'],
    ['ws.ods.opinsights.azure.com:443', 'allow wild'],
    // {workspaceId}: exact per workspace (GUID lower-cased)
    [`${WS1}.oms.opinsights.azure.com:443`, 'allow ws'],
    [`${WS1.toUpperCase()}.OMS.opinsights.azure.com:443`, 'allow ws'],
    [`${WS2}.oms.opinsights.azure.com:443`, 'deny host_not_allowed'],
    [`x.${WS1}.oms.opinsights.azure.com:443`, 'deny host_not_allowed'],
    ['oms.opinsights.azure.com:443', 'deny host_not_allowed'],
    // {region}: union of workspace regions and allow.regions
    ['westeurope.handler.control.monitor.azure.com:443', 'allow region'],
    ['eastus2.handler.control.monitor.azure.com:443', 'allow region'],
    ['westus.handler.control.monitor.azure.com:443', 'deny host_not_allowed'],
    ['handler.control.monitor.azure.com:443', 'deny host_not_allowed'],
    // *.{region}: wildcard below each region
    ['mydce-abcd.westeurope-1.ingest.monitor.azure.com:443', 'deny host_not_allowed'],
    ['mydce-abcd.westeurope.ingest.monitor.azure.com:443', 'allow dce'],
    ['a.b.eastus2.ingest.monitor.azure.com:443', 'allow dce'],
    ['westeurope.ingest.monitor.azure.com:443', 'deny host_not_allowed'],
    ['x.westus.ingest.monitor.azure.com:443', 'deny host_not_allowed'],
  ])('%s → %s', (authority, want) => {
    expect(summary(at(policy, authority))).toBe(want);
  });

  it('templates widen to a wildcard label when no workspaces/regions are configured', () => {
    const p = compilePolicy(
      makeConfig({
        rules: [
          { name: 'ws', hosts: ['{workspaceId}.ods.opinsights.azure.com'] },
          { name: 'dce', hosts: ['*.{region}.ingest.monitor.azure.com'] },
        ],
      }),
    );
    expect(summary(at(p, `${WS2}.ods.opinsights.azure.com:443`))).toBe('allow ws');
    expect(summary(at(p, 'anything.ods.opinsights.azure.com:443'))).toBe('allow ws');
    expect(summary(at(p, 'ods.opinsights.azure.com:443'))).toBe('deny host_not_allowed');
    expect(summary(at(p, 'dce.westus.ingest.monitor.azure.com:443'))).toBe('allow dce');
    expect(summary(at(p, 'ingest.monitor.azure.com:443'))).toBe('deny host_not_allowed');
    expect(describePolicy(p).join('\n')).toContain('no workspaces configured');
  });

  it('denies everything when nothing is allowed', () => {
    const p = compilePolicy(makeConfig({}));
    expect(summary(at(p, 'example.com:443'))).toBe('deny host_not_allowed');
    expect(summary(at(p, '10.0.0.1:443'))).toBe('deny ip_literal');
    expect(p.rules).toEqual([]);
  });

  it('decide fails closed on targets that were not normalised', () => {
    expect(summary(policy.decide({ target: { host: 'CRL.microsoft.com', port: 443, kind: 'name' }, client: CLIENT }))).toBe('deny host_not_allowed');
    expect(summary(policy.decide({ target: { host: '127.1', port: 443, kind: 'ipv4' }, client: CLIENT }))).toBe('deny ip_literal');
    expect(summary(policy.decide({ target: { host: 'zz', port: 443, kind: 'ipv6' }, client: CLIENT }))).toBe('deny ip_literal');
  });
});

describe('ports and rule precedence', () => {
  const policy = compilePolicy(
    makeConfig({
      rules: [
        { name: 'broad', hosts: ['*.example.com'], ports: [443] },
        { name: 'narrow', hosts: ['*.deep.example.com'], ports: [8443] },
        { name: 'exact80', hosts: ['crl.deep.example.com'], ports: [80] },
        { name: 'exact8080', hosts: ['crl.deep.example.com'], ports: [8080, 80] },
      ],
    }),
  );

  it.each([
    ['crl.deep.example.com:80', 'allow exact80'], // exact beats wildcard; first exact rule with the port
    ['crl.deep.example.com:8080', 'allow exact8080'],
    ['crl.deep.example.com:8443', 'allow narrow'], // any matching rule may allow the port
    ['crl.deep.example.com:443', 'allow broad'],
    ['crl.deep.example.com:22', 'deny port_not_allowed exact80'], // named after the best match
    ['x.deep.example.com:8443', 'allow narrow'],
    ['x.deep.example.com:22', 'deny port_not_allowed narrow'], // longer suffix named first
    ['x.example.com:8443', 'deny port_not_allowed broad'],
    ['x.example.com:443', 'allow broad'],
    ['example.com:443', 'deny host_not_allowed'],
  ])('%s → %s', (authority, want) => {
    expect(summary(at(policy, authority))).toBe(want);
  });
});

describe('report mode', () => {
  it('global report turns every refusal into report with the same reason', () => {
    const p = compilePolicy(makeConfig({ mode: 'report', rules: [{ name: 'r', hosts: ['a.example.com'], ports: [443] }], clientsAllow: ['10.0.0.0/8'] }));
    expect(p.mode).toBe('report');
    expect(summary(at(p, 'b.example.com:443'))).toBe('report host_not_allowed');
    expect(summary(at(p, 'a.example.com:80'))).toBe('report port_not_allowed r');
    expect(summary(at(p, '10.0.0.1:443'))).toBe('report ip_literal');
    expect(summary(at(p, 'a.example.com:443'))).toBe('allow r');
    const rule = p.rules[0]!;
    expect(summary(p.decideAddress(rule, false))).toBe('report private_address r');
    expect(summary(p.checkClient('192.168.1.1'))).toBe('report client_denied');
    expect(p.checkClient('10.1.1.1').verdict).toBe('allow');
  });

  it('a rule in report mode reports its own port and private-address refusals only', () => {
    const p = compilePolicy(
      makeConfig({
        rules: [
          { name: 'trial', hosts: ['a.example.com'], ports: [443], mode: 'report' },
          { name: 'strict', hosts: ['b.example.com'], ports: [443] },
        ],
      }),
    );
    const trial = p.rules.find((r) => r.name === 'trial')!;
    const strict = p.rules.find((r) => r.name === 'strict')!;
    expect(summary(at(p, 'a.example.com:80'))).toBe('report port_not_allowed trial');
    expect(summary(p.decideAddress(trial, false))).toBe('report private_address trial');
    expect(summary(at(p, 'b.example.com:80'))).toBe('deny port_not_allowed strict');
    expect(summary(p.decideAddress(strict, false))).toBe('deny private_address strict');
    expect(summary(at(p, 'c.example.com:443'))).toBe('deny host_not_allowed');
  });
});

describe('decideAddress', () => {
  const p = compilePolicy(
    makeConfig({
      rules: [
        { name: 'pl', hosts: ['*.privatelink.ods.opinsights.azure.com'], allowPrivate: true },
        { name: 'pub', hosts: ['*.ods.opinsights.azure.com'] },
      ],
    }),
  );
  it('non-public addresses need allowPrivate on the matched rule', () => {
    const pl = at(p, 'ws.privatelink.ods.opinsights.azure.com:443');
    const pub = at(p, 'ws.ods.opinsights.azure.com:443');
    expect(summary(pl)).toBe('allow pl');
    expect(summary(pub)).toBe('allow pub');
    if (pl.verdict !== 'allow' || pub.verdict !== 'allow') throw new Error('unreachable');
    expect(summary(p.decideAddress(pl.rule, false))).toBe('allow pl');
    expect(summary(p.decideAddress(pub.rule, false))).toBe('deny private_address pub');
    expect(summary(p.decideAddress(pub.rule, true))).toBe('allow pub');
  });
});

describe('IP literal targets', () => {
  const p = compilePolicy(
    makeConfig({
      rules: [
        { name: 'lo', hosts: ['127.0.0.1', '[::1]'], allowPrivate: true },
        { name: 'net', hosts: ['10.1.0.0/16', 'fd00::/8'], ports: [443, 8443] },
        { name: 'host', hosts: ['10.1.2.3'], ports: [22] },
      ],
    }),
  );
  it.each([
    ['127.0.0.1:443', 'allow lo'],
    ['[::1]:443', 'allow lo'],
    ['[0:0:0:0:0:0:0:1]:443', 'allow lo'],
    ['[::ffff:127.0.0.1]:443', 'allow lo'],
    ['127.0.0.2:443', 'deny ip_literal'],
    ['10.1.200.7:8443', 'allow net'],
    ['10.2.0.1:443', 'deny ip_literal'],
    ['[fd12:3456::1]:443', 'allow net'],
    ['[fe80::1]:443', 'deny ip_literal'],
    ['10.1.2.3:22', 'allow host'],
    ['10.1.2.3:443', 'allow net'],
    ['10.1.2.3:80', 'deny port_not_allowed host'], // the most specific block is named
  ])('%s → %s', (authority, want) => {
    expect(summary(at(p, authority))).toBe(want);
  });

  it('an IP literal is never matched by name rules', () => {
    const q = compilePolicy(makeConfig({ rules: [{ name: 'w', hosts: ['*.0.0.127.in-addr.arpa', 'localhost'] }] }));
    expect(summary(at(q, '127.0.0.1:443'))).toBe('deny ip_literal');
  });

  it.each(['127.1:443', '0x7f000001:443', '2130706433:443', '0177.0.0.1:443', '0x7f.0.0.1:443'])(
    'numeric shorthand %s is refused at parse time, never a name',
    (authority) => {
      expect(() => parseConnectAuthority(authority)).toThrow(expect.objectContaining({ code: 'PCL_ERR_BAD_AUTHORITY' }));
    },
  );

  it('a non-public literal still needs allowPrivate', () => {
    const d = at(p, '10.1.0.1:443');
    if (d.verdict !== 'allow') throw new Error('expected allow');
    expect(summary(p.decideAddress(d.rule, false))).toBe('deny private_address net');
  });
});

describe('client ACL', () => {
  it('absent allow list admits any source', () => {
    const p = compilePolicy(makeConfig({}));
    expect(p.checkClient('203.0.113.9').verdict).toBe('allow');
    expect(p.checkClient('2001:db8::1').verdict).toBe('allow');
  });

  const p = compilePolicy(
    makeConfig({
      clientsAllow: ['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '[fd00::1]'],
      clientsDeny: ['10.9.0.0/16', '2001:db8:bad::/48'],
    }),
  );
  it.each([
    ['10.1.2.3', 'allow client-acl'],
    ['::ffff:10.1.2.3', 'allow client-acl'],
    ['192.168.1.7', 'allow client-acl'],
    ['192.168.1.8', 'deny client_denied'],
    ['10.9.1.1', 'deny client_denied'], // deny beats allow
    ['::ffff:10.9.1.1', 'deny client_denied'],
    ['11.0.0.1', 'deny client_denied'],
    ['2001:db8:1::5', 'allow client-acl'],
    ['2001:db8:bad::5', 'deny client_denied'],
    ['fd00::1', 'allow client-acl'],
    ['fd00::2', 'deny client_denied'],
    ['fe80::1%eth0', 'deny client_denied'],
    ['not-an-ip', 'deny client_denied'],
    ['', 'deny client_denied'],
  ])('%s → %s', (ip, want) => {
    expect(summary(p.checkClient(ip))).toBe(want);
  });
});

describe('describePolicy', () => {
  it('lists mode, clients and each rule with its expanded hosts', () => {
    const p = compilePolicy(
      makeConfig({
        presets: ['azure-public'],
        workspaces: [{ id: WS1, region: 'westeurope' }],
        rules: [{ name: 'crl', hosts: ['crl.microsoft.com', '*.pki.example.com'], ports: [80] }],
        clientsAllow: ['10.0.0.0/8'],
      }),
    );
    const lines = describePolicy(p);
    expect(lines[0]).toBe('mode: enforce');
    expect(lines[1]).toBe('clients: allow 10.0.0.0/8; deny none');
    expect(lines).toContain('rule crl: port 80: crl.microsoft.com, *.pki.example.com');
    expect(lines).toContain(`rule azure-public/ods: port 443: ${WS1}.ods.opinsights.azure.com`);
    expect(lines.join('\n')).toMatch(/\*\.blob\.core\.windows\.net" is a shared suffix/);
    expect(lines.join('\n')).not.toMatch(/group/);
  });

  it('lists each client group: who is in it and the rules it may reach', () => {
    const p = compilePolicy(
      makeConfig({
        presets: ['azure-public'],
        rules: [
          { name: 'crl', hosts: ['crl.microsoft.com'], ports: [80] },
          { name: 'updates', hosts: ['updates.example.com'], ports: [443] },
        ],
        groups: [
          { name: 'agents', users: ['ama-1', 'ama-2'], subjects: ['CN=agent,O=Contoso'], cidrs: ['10.1.0.0/16'], rules: ['azure-public', 'crl'] },
          { name: 'patching', users: [], subjects: [], cidrs: ['10.9.0.0/24'], rules: ['updates'] },
        ],
      }),
    );
    const lines = describePolicy(p);
    expect(lines).toContain('group agents: users ama-1, ama-2; subjects "CN=agent,O=Contoso"; sources 10.1.0.0/16 -> rules azure-public, crl');
    expect(lines).toContain('group patching: sources 10.9.0.0/24 -> rules updates');
    expect(lines).toContain('clients in no group: every rule');
  });
});

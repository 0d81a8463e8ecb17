import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../src/policy/index.js';
import { configIssues } from '../../src/config/index.js';
import { makeConfig, WS1 } from './helpers.js';

describe('the config checks compilePolicy relies on: host patterns', () => {
  it.each([
    ['*', /first label/],
    ['*.', /not a valid host name/],
    ['**.example.com', /first label/],
    ['a*.example.com', /first label/],
    ['foo.*.com', /first label/],
    ['*.*.example.com', /first label/],
    ['*example.com', /first label/],
    ['example.*', /first label/],
    ['*.com', /top-level domain/],
    ['*.internal', /top-level domain/],
    ['*.co.uk', /public suffix/],
    ['*.CO.UK.', /public suffix/],
    ['*.foo.ck', /public suffix/], // PSL wildcard rule *.ck
    ['*.kawasaki.jp', /public suffix/], // its children are public suffixes (*.kawasaki.jp)
    ['{workspaceId}.com', /public suffix|top-level/],
    ['*.{region}.co.uk', /public suffix/],
    ['{tenant}.example.com', /unknown placeholder/],
    ['{workspaceid}.example.com', /unknown placeholder/],
    ['x{region}.example.com', /unknown placeholder/],
    ['a.{region}.example.com', /first label/],
    ['{workspaceId}.{region}.example.com', /one placeholder/],
    ['{region}', /needs a domain/],
    ['{region}.*.example.com', /first label/],
    ['crl.microsoft.com:80', /ports go in/],
    ['127.1', /dotted-quad/],
    ['10.0.0.0/33', /IP address or CIDR/],
    ['10.0.0.0/8/8', /IP address or CIDR/],
    ['::1/129', /IP address or CIDR/],
    ['0x7f000001', /not a valid host name/],
    ['2130706433', /dotted-quad/],
    ['exa mple.com', /not a valid host name/],
    ['http://example.com', /IP address or CIDR|not a valid/],
    ['', /empty/],
  ])('%j is refused', (pattern, message) => {
    const cfg = makeConfig({ rules: [{ hosts: ['ok.example.com'] }, { name: 'bad', hosts: ['fine.example.com', pattern] }] });
    const issues = configIssues(cfg);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toEqual(['allow', 'rules', 1, 'hosts', 1]);
    expect(issues[0]!.message).toMatch(message);
    expect(() => compilePolicy(cfg)).toThrow(expect.objectContaining({ code: 'PCL_ERR_POLICY' }));
  });

  it.each([
    'crl.microsoft.com',
    'CRL.Microsoft.com.',
    'bücher.example',
    '*.bücher.example',
    '*.pki.example.com',
    '*.blob.core.windows.net', // PSL private section: accepted (legacy agents need it)
    '*.github.io',
    '*.azure.us', // tldts: azure.us is not an ICANN public suffix
    '*.corp.internal',
    '*.privatelink.ods.opinsights.azure.com',
    '{workspaceId}.ods.opinsights.azure.com',
    '*.{region}.ingest.monitor.azure.com',
    '{region}.handler.control.monitor.azure.com',
    'localhost',
    '127.0.0.1',
    '10.1.0.0/16',
    '0.0.0.0/0',
    '::1',
    '[::1]',
    'fd00::/8',
    '[fd00::]/8',
  ])('%j is accepted', (pattern) => {
    expect(configIssues(makeConfig({ rules: [{ hosts: [pattern] }] }))).toEqual([]);
  });
});

describe('the config checks compilePolicy relies on: other keys', () => {
  it('reports workspaces, regions, ports, names and client CIDRs with their paths', () => {
    const cfg = makeConfig({
      workspaces: [
        { id: WS1, region: 'westeurope' },
        { id: 'not-a-guid', region: 'west europe' },
      ],
      regions: ['eastus', 'bad_region'],
      rules: [
        { name: 'a', hosts: ['a.example.com'] },
        { name: 'a', hosts: ['b.example.com'], ports: [0, 443, 70000] },
        { name: 'azure-public/ods', hosts: ['c.example.com'], ports: [] },
      ],
      clientsAllow: ['10.0.0.0/8', '10.0.0.0/40'],
      clientsDeny: ['nope'],
    });
    const paths = configIssues(cfg).map((i) => i.path.join('.'));
    // One issue per mistake: the schema and the built-in checks do not overlap.
    expect(paths.sort()).toEqual(
      [
        'allow.workspaces.1.id',
        'allow.workspaces.1.region',
        'allow.regions.1',
        'allow.rules.1.name',
        'allow.rules.1.ports.0',
        'allow.rules.1.ports.2',
        'allow.rules.2.name',
        'allow.rules.2.ports',
        'clients.allow.1',
        'clients.deny.0',
      ].sort(),
    );
  });

  it('accepts upper-case workspace ids (they are normalised); region names are written in lower case', () => {
    expect(configIssues(makeConfig({ workspaces: [{ id: WS1.toUpperCase(), region: 'westeurope' }], regions: ['eastus2'] }))).toEqual([]);
    const issues = configIssues(makeConfig({ workspaces: [{ id: WS1, region: 'WestEurope' }] }));
    expect(issues.map((i) => i.path.join('.'))).toEqual(['allow.workspaces.0.region']);
  });

  it('compilePolicy names the first problem in its error', () => {
    expect(() => compilePolicy(makeConfig({ rules: [{ name: 'x', hosts: ['*.com'] }] }))).toThrow(/allow\.rules\.0\.hosts\.0/);
  });
});

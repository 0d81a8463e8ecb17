import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfigFile, parseConfig, type SemanticCheck } from '../../src/config/index.js';
import { configError, issueAt, writeTemp } from './helpers.js';

const noEnv = { env: {} };

describe('parseConfig: defaults', () => {
  it('an empty file, or one with only comments, is the built-in default', () => {
    expect(loadConfigFile(writeTemp('empty.yaml', ''), noEnv)).toEqual(defaultConfig({}));
    expect(loadConfigFile(writeTemp('comments.yaml', '# nothing here\n\n# yet\n'), noEnv)).toEqual(defaultConfig({}));
  });

  it('fills every default around the keys that are given', () => {
    const c = parseConfig(
      ['proxy:', '  timeouts:', '    idleMs: 1000', 'allow:', '  rules:', '    - name: crl', '      hosts: [crl.microsoft.com]', ''].join('\n'),
      noEnv,
    );
    expect(c.proxy.timeouts).toEqual({ connectMs: 10000, dnsMs: 5000, idleMs: 1000, maxTunnelMs: 0, headersMs: 10000, upstreamResponseMs: 60000 });
    expect(c.proxy.listen).toEqual(['0.0.0.0:8080']);
    expect(c.allow.presets).toEqual(['azure-public']);
    expect(c.allow.rules).toEqual([{ name: 'crl', hosts: ['crl.microsoft.com'], ports: [443], allowPrivate: false, mode: 'enforce' }]);
    expect(c.clients).toEqual({ deny: [], certificates: { subjects: [], thumbprintsSha256: [] }, groups: [] });
    expect('allow' in c.clients).toBe(false); // absent = any source; must not become []
    expect(c.admin).toEqual({ listen: '127.0.0.1:9464', metrics: true });
  });

  it('does not share default arrays between configs', () => {
    const a = parseConfig('', noEnv);
    a.allow.presets.push('azure-china');
    a.proxy.listen.push('127.0.0.1:1');
    expect(parseConfig('', noEnv).allow.presets).toEqual(['azure-public']);
    expect(defaultConfig({}).proxy.listen).toEqual(['0.0.0.0:8080']);
  });

  it('keeps values as written, and lower-cases dns.overrides host names', () => {
    const c = parseConfig('dns:\n  overrides:\n    WS1.ODS.Opinsights.Azure.com.: "10.1.2.3"\n    h6.example.com: "fd00::1"\n', noEnv);
    expect(c.dns.overrides).toEqual({ 'ws1.ods.opinsights.azure.com': '10.1.2.3', 'h6.example.com': 'fd00::1' });
  });
});

describe('the example config/portcullis.yaml', () => {
  const file = new URL('../../config/portcullis.yaml', import.meta.url).pathname;

  it('points editors at the schema and passes validation', () => {
    expect(readFileSync(file, 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./portcullis.schema.json');
    const c = loadConfigFile(file, noEnv);
    expect(c.allow.workspaces.length).toBeGreaterThan(0);
    const crl = c.allow.rules.find((r) => r.name === 'crl');
    expect(crl?.ports).toEqual([80]);
    expect(crl?.hosts).toContain('crl.microsoft.com');
    expect(c.allow.rules.find((r) => r.allowPrivate)?.name).toBe('private-link');
    expect(c.clients.allow).toContain('10.0.0.0/8');
  });
});

describe('parseConfig: a broken file reports every error at its key and line', () => {
  // Line numbers are 1-based; the comment on each line is its number.
  const broken = [
    'proxy:', //                                            1
    '  lisen: ["0.0.0.0:8080"]', //                           2 unknown key
    '  listen: ["0.0.0.0:8080", "0.0.0.0:8080"]', //          3 duplicate listener
    '  limits:', //                                           4
    '    maxConnections: "lots"', //                          5 wrong type
    'allow:', //                                              6
    '  rules:', //                                            7
    '    - name: crl', //                                     8
    '      hosts: [crl.microsoft.com]', //                    9
    '      ports:', //                                        10
    '        - 80', //                                        11
    '        - 70000', //                                     12 port out of range
    '    - name: crl', //                                     13 duplicate rule name
    '      hosts: [ocsp.digicert.com]', //                    14
    'clients:', //                                            15
    '  allow:', //                                            16
    '    - 10.0.0.0/8', //                                    17
    '    - 10.0.0.0/33', //                                   18 bad CIDR
    'log:', //                                                19
    '  level: loud', //                                       20 bad enum
    '',
  ].join('\n');

  it('throws one ConfigError with code PCL_ERR_CONFIG listing all of them', () => {
    const file = writeTemp('broken.yaml', broken);
    const err = configError(() => loadConfigFile(file, noEnv));
    expect(err.code).toBe('PCL_ERR_CONFIG');
    expect(err.issues).toHaveLength(7);

    expect(issueAt(err, 'proxy.lisen')).toMatchObject({ line: 2, column: 3, message: expect.stringMatching(/unknown key.*"listen"/) });
    expect(issueAt(err, 'proxy.listen[1]')).toMatchObject({ line: 3, message: expect.stringContaining('same address') });
    expect(issueAt(err, 'proxy.limits.maxConnections')).toMatchObject({ line: 5, message: expect.stringContaining('integer') });
    expect(issueAt(err, 'allow.rules[0].ports[1]')).toMatchObject({ line: 12, column: 11, message: expect.stringContaining('65535') });
    expect(issueAt(err, 'allow.rules[1].name')).toMatchObject({ line: 13, message: expect.stringContaining('duplicate rule name') });
    expect(issueAt(err, 'clients.allow[1]')).toMatchObject({ line: 18, message: expect.stringContaining('10.0.0.0/33') });
    expect(issueAt(err, 'log.level')).toMatchObject({ line: 20, message: expect.stringContaining('"info"') });

    // The message is what an operator sees in the log: one "<file>:<line>:<col> <path>: <message>" per issue.
    expect(err.message).toContain(`${file}:2:3 proxy.lisen: unknown key`);
    expect(err.message).toContain(`${file}:12:11 allow.rules[0].ports[1]: must be from 1 to 65535; got 70000`);
    // Issues come in file order.
    const lines = err.issues.map((i) => i.line ?? 0);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it('locates a missing required key at its parent', () => {
    const err = configError(() => parseConfig('allow:\n  rules:\n    - name: a\n      ports: [80]\n', noEnv));
    expect(issueAt(err, 'allow.rules[0].hosts')).toMatchObject({ line: 3, message: 'required key is missing' });
  });

  it('reports an unknown key inside a rule, and a duplicate port', () => {
    const err = configError(() =>
      parseConfig('allow:\n  rules:\n    - name: a\n      hosts: [x.example.com]\n      ports: [443, 443]\n      allowprivate: true\n', noEnv),
    );
    expect(issueAt(err, 'allow.rules[0].ports[1]')).toMatchObject({ line: 5, message: expect.stringContaining('duplicate') });
    expect(issueAt(err, 'allow.rules[0].allowprivate')).toMatchObject({ line: 6, message: expect.stringContaining('"allowPrivate"') });
  });

  it('says a key left empty is empty, rather than a type riddle', () => {
    const err = configError(() => parseConfig('clients:\n  deny:\n', noEnv));
    expect(issueAt(err, 'clients.deny')).toMatchObject({ line: 2, message: expect.stringContaining('is empty') });
  });

  it('checks workspace ids, regions, presets and the admin token', () => {
    const err = configError(() =>
      parseConfig(
        [
          'allow:',
          '  presets: [azure-public, azure-mars]',
          '  workspaces:',
          '    - { id: not-a-guid, region: West Europe }',
          'admin:',
          '  token: short',
          '',
        ].join('\n'),
        noEnv,
      ),
    );
    expect(issueAt(err, 'allow.presets[1]')).toMatchObject({ line: 2, message: expect.stringContaining('"azure-usgov"') });
    expect(issueAt(err, 'allow.workspaces[0].id')).toMatchObject({ line: 4, message: expect.stringContaining('GUID') });
    expect(issueAt(err, 'allow.workspaces[0].region')).toMatchObject({ line: 4 });
    expect(issueAt(err, 'admin.token')).toMatchObject({ line: 6, message: expect.stringContaining('16') });
  });
});

describe('parseConfig: YAML-level errors', () => {
  it('reports a syntax error with its line', () => {
    const err = configError(() =>
      parseConfig('proxy:\n  mode: enforce\nallow:\n  presets: [azure-public\nlog:\n  level: info\n', { source: 'x.yaml', env: {} }),
    );
    expect(err.issues.length).toBeGreaterThanOrEqual(1);
    expect(err.issues[0]).toMatchObject({ line: 5, message: expect.stringMatching(/^YAML: /) });
    expect(err.message).toContain('x.yaml:5:');
  });

  it('treats a duplicate key as an error, not last-one-wins', () => {
    const err = configError(() => parseConfig('log:\n  level: info\n  level: debug\n', noEnv));
    expect(err.issues).toEqual([{ path: 'log.level', line: 3, column: 3, message: expect.stringContaining('duplicate key') }]);
  });

  it('rejects a file that is a list or a scalar', () => {
    expect(configError(() => parseConfig('- a\n- b\n', noEnv)).issues[0]?.message).toContain('must be a mapping');
    expect(configError(() => parseConfig('hello\n', noEnv)).issues[0]?.message).toContain('must be a mapping');
  });

  it('rejects several documents in one file', () => {
    expect(() => parseConfig('log: {}\n---\nlog: {}\n', noEnv)).toThrow(ConfigError);
  });
});

describe('parseConfig: built-in semantic checks', () => {
  const errorsOf = (yaml: string): Record<string, string> =>
    Object.fromEntries(configError(() => parseConfig(yaml, noEnv)).issues.map((i) => [i.path, i.message]));

  it('accepts the listen forms operators write', () => {
    const c = parseConfig('proxy:\n  listen: ["0.0.0.0:8080", "[::1]:8080", ":3128", "localhost:8081"]\nadmin:\n  listen: "[::1]:9464"\n', noEnv);
    expect(c.proxy.listen).toHaveLength(4);
  });

  it('rejects bad listen addresses and listeners that cannot both be bound', () => {
    const e = errorsOf('proxy:\n  listen: ["8080", "::1:8080", "[::]:8080", "10.0.0.1:70000", "127.0.0.1:8080"]\nadmin:\n  listen: "127.0.0.1:99999"\n');
    expect(e['proxy.listen[0]']).toContain('missing ":port"');
    expect(e['proxy.listen[1]']).toContain('brackets');
    expect(e['proxy.listen[3]']).toContain('port');
    expect(e['proxy.listen[4]']).toContain('overlaps proxy.listen[2]'); // [::] is dual-stack
    expect(e['admin.listen']).toContain('port');
    expect(Object.keys(e)).toHaveLength(5);
  });

  it('rejects an admin listener on a proxy address', () => {
    expect(errorsOf('proxy:\n  listen: [":8080"]\nadmin:\n  listen: "127.0.0.1:8080"\n')['admin.listen']).toContain('overlaps');
  });

  it('checks client IPs and CIDRs, IPv4 and IPv6', () => {
    const ok = parseConfig('clients:\n  allow: ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]\n  deny: ["10.1.0.0/16"]\n', noEnv);
    expect(ok.clients.allow).toHaveLength(4);
    const e = errorsOf('clients:\n  allow: ["10.0.0.0/8", "10.1", "fd00::/129", "example.com"]\n  deny: ["1.2.3.4/8/9"]\n');
    expect(Object.keys(e).sort()).toEqual(['clients.allow[1]', 'clients.allow[2]', 'clients.allow[3]', 'clients.deny[0]']);
  });

  it('checks dns.overrides host names and addresses', () => {
    const e = errorsOf(
      'dns:\n  overrides:\n    "*.example.com": 1.2.3.4\n    good.example.com: not-an-ip\n    1.2.3.4: 5.6.7.8\n    A.example.com: 1.1.1.1\n    a.example.com.: 1.1.1.2\n',
    );
    expect(e['dns.overrides["*.example.com"]']).toContain('wildcard');
    expect(e['dns.overrides["good.example.com"]']).toContain('not an IPv4 or IPv6 address');
    expect(e['dns.overrides["1.2.3.4"]']).toContain('not an IP address');
    expect(e['dns.overrides["a.example.com."]']).toContain('same host');
  });

  it('rejects duplicate rule names case-insensitively and duplicate workspaces', () => {
    const e = errorsOf(
      'allow:\n  workspaces:\n    - id: 00000000-0000-0000-0000-00000000000a\n    - id: 00000000-0000-0000-0000-00000000000A\n  rules:\n    - { name: CRL, hosts: [a.example.com] }\n    - { name: crl, hosts: [b.example.com] }\n',
    );
    expect(e['allow.rules[1].name']).toContain('duplicate rule name');
    expect(e['allow.workspaces[1].id']).toContain('duplicate workspace');
  });
});

describe('parseConfig: semantic checks from other modules', () => {
  const noStars: SemanticCheck = (c) =>
    c.allow.rules.flatMap((r, i) =>
      r.hosts.flatMap((h, j) => (h === 'everything.example' ? [{ path: ['allow', 'rules', i, 'hosts', j], message: 'too broad' }] : [])),
    );

  it('reports their issues at the right line, together with everything else', () => {
    const yaml = 'allow:\n  rules:\n    - name: all\n      hosts:\n        - a.example.com\n        - everything.example\nlog:\n  level: loud\n';
    const err = configError(() => parseConfig(yaml, { env: {}, checks: [noStars] }));
    expect(issueAt(err, 'allow.rules[0].hosts[1]')).toMatchObject({ line: 6, column: 11, message: 'too broad' });
    expect(issueAt(err, 'log.level')).toMatchObject({ line: 8 });
  });

  it('does not let a check that trips over already-invalid data hide the real errors', () => {
    const fragile: SemanticCheck = (c) => c.allow.rules.map((r) => ({ path: ['allow'], message: r.hosts.join('') }));
    const err = configError(() => parseConfig('allow:\n  rules:\n    - name: x\n      hosts: 5\n', { env: {}, checks: [fragile] }));
    expect(issueAt(err, 'allow.rules[0].hosts')).toMatchObject({ line: 4, message: expect.stringContaining('list') });
  });

  it('reports a mistake once: every check is written in one place', () => {
    const yaml =
      'allow:\n  rules:\n    - name: r\n      hosts: [a.example.com, "*.com"]\n      ports: [70000]\n    - name: R\n      hosts: [b.example.com]\nclients:\n  deny: ["10.0.0.0/40"]\n';
    const err = configError(() => parseConfig(yaml, { env: {} }));
    expect(err.issues.map((i) => i.path).sort()).toEqual(
      ['allow.rules[0].hosts[1]', 'allow.rules[0].ports[0]', 'allow.rules[1].name', 'clients.deny[0]'].sort(),
    );
    expect(issueAt(err, 'allow.rules[0].hosts[1]')).toMatchObject({ line: 4, message: expect.stringContaining('top-level domain') });
    // A check's issue comes through next to the built-in ones.
    const extra: SemanticCheck = () => [{ path: ['allow', 'rules', 0, 'hosts', 0], message: 'not this one' }];
    const err2 = configError(() => parseConfig(yaml, { env: {}, checks: [extra] }));
    expect(issueAt(err2, 'allow.rules[0].hosts[0]')).toMatchObject({ message: 'not this one' });
  });

  it('lets a check crash on valid data surface as the bug it is', () => {
    const buggy: SemanticCheck = () => {
      throw new TypeError('boom');
    };
    expect(() => parseConfig('', { env: {}, checks: [buggy] })).toThrow('boom');
  });
});

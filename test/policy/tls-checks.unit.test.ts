/** What each rule's tunnels are checked for (proxy.tlsInspection, overridden by the rule's tls). */
import { describe, expect, it } from 'vitest';
import { compilePolicy, type CompiledRule } from '../../src/policy/index.js';
import { parseConfig } from '../../src/config/index.js';
import { CLIENT, makeConfig } from './helpers.js';

function ruleFor(policy: ReturnType<typeof compilePolicy>, host: string): CompiledRule {
  const d = policy.decide({ target: { kind: 'name', host, port: 443 }, client: CLIENT });
  if (d.verdict !== 'allow') throw new Error(`${host} not allowed`);
  return d.rule;
}

describe('TLS checks per rule', () => {
  it('fills the global defaults in, lets a rule override them, and makes the presets require TLS', () => {
    const config = makeConfig({
      presets: ['azure-public'],
      rules: [
        { name: 'own', hosts: ['own.example.com'] },
        { name: 'ip', hosts: ['byip.example.com'] },
      ],
    });
    const ip = config.allow.rules[1];
    if (!ip) throw new Error('rule missing');
    ip.tls = { require: true, sniMustMatch: false, minVersion: '1.3', maxVersion: '1.2' };
    const policy = compilePolicy(config);
    expect(ruleFor(policy, 'own.example.com').tls).toEqual({ require: false, sniMustMatch: true, minVersion: 0x0303, maxVersion: null, peekTimeoutMs: 10000 });
    expect(ruleFor(policy, 'byip.example.com').tls).toEqual({
      require: true,
      sniMustMatch: false,
      minVersion: 0x0304,
      maxVersion: 0x0303,
      peekTimeoutMs: 10000,
    });
    expect(ruleFor(policy, 'global.handler.control.monitor.azure.com').tls).toMatchObject({ require: true, sniMustMatch: true });
  });

  it('inspects nothing when proxy.tlsInspection.enabled is false', () => {
    const config = makeConfig({ presets: ['azure-public'] });
    config.proxy.tlsInspection.enabled = false;
    expect(ruleFor(compilePolicy(config), 'global.handler.control.monitor.azure.com').tls).toBeNull();
  });

  it('compiles clients.certificates: empty means no check', () => {
    expect(compilePolicy(makeConfig({})).clientCertificates.empty).toBe(true);
    const config = makeConfig({});
    config.clients.certificates.subjects = ['CN=a, O=b'];
    expect(compilePolicy(config).clientCertificates.empty).toBe(false);
  });
});

describe('the config file', () => {
  it('reads proxy.tlsInspection and a rule tls block, and refuses a subject that is not attribute=value pairs', () => {
    const c = parseConfig(
      [
        'proxy:',
        '  tlsInspection: { requireTls: true, minVersion: "1.3" }',
        'allow:',
        '  rules:',
        '    - { name: r, hosts: [r.example.com], tls: { sniMustMatch: false } }',
      ].join('\n'),
      { env: {} },
    );
    expect(c.proxy.tlsInspection).toEqual({ enabled: true, requireTls: true, sniMustMatch: true, minVersion: '1.3', peekTimeoutMs: 10000 });
    expect(c.allow.rules[0]?.tls).toEqual({ sniMustMatch: false });
    expect(() => parseConfig('clients:\n  certificates:\n    subjects: ["just a name"]\n', { env: {} })).toThrow(/attribute=value/);
    expect(() => parseConfig('proxy:\n  tlsInspection: { minVersion: "1.4" }\n', { env: {} })).toThrow(/minVersion/);
  });
});

// Host names, client CIDRs and rule names are judged once, by the parsers the policy and the proxy
// use. These are the cases where the config module's former copies disagreed with them.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { overrideHost } from '../../src/config/checks.js';
import { compilePolicy, parseConnectAuthority } from '../../src/policy/index.js';
import { configError } from './helpers.js';

const noEnv = { env: {} };

function overridesOf(keys: string[]): Record<string, string> {
  const yaml = `dns:\n  overrides:\n${keys.map((k) => `    ${JSON.stringify(k)}: 10.0.0.1\n`).join('')}`;
  return parseConfig(yaml, noEnv).dns.overrides;
}

function issuesOf(yaml: string): Record<string, string> {
  return Object.fromEntries(configError(() => parseConfig(yaml, noEnv)).issues.map((i) => [i.path, i.message]));
}

describe('dns.overrides keys are normalised like CONNECT targets', () => {
  it('accepts an IDN key and stores it as the punycode a target arrives as (was refused)', () => {
    expect(overridesOf(['Bücher.Example'])).toEqual({ 'xn--bcher-kva.example': '10.0.0.1' });
    expect(parseConnectAuthority('bücher.example:443').host).toBe('xn--bcher-kva.example');
  });

  it('sees a Unicode and a punycode spelling of one host as the same host', () => {
    expect(issuesOf('dns:\n  overrides:\n    bücher.example: 10.0.0.1\n    xn--bcher-kva.example: 10.0.0.2\n')).toEqual({
      'dns.overrides["xn--bcher-kva.example"]': 'same host as "bücher.example"',
    });
  });

  it.each(['127.1', 'host.123', '0x7f.1', 'xn--zz.example', 'a..example', '-a.example'])(
    'refuses %j, which no target can ever equal (numeric last label, broken punycode, bad label)',
    (key) => {
      expect(issuesOf(`dns:\n  overrides:\n    ${JSON.stringify(key)}: 10.0.0.1\n`)[`dns.overrides[${JSON.stringify(key)}]`]).toMatch(
        /not a valid host name|not an IP address/,
      );
    },
  );

  it('still lower-cases, drops the root dot and refuses IPs and wildcards', () => {
    expect(overridesOf(['API.Example.COM.'])).toEqual({ 'api.example.com': '10.0.0.1' });
    expect(overrideHost('[::1]')).toEqual({ ok: false, message: 'must be a host name, not an IP address' });
    expect(overrideHost('10.0.0.1')).toEqual({ ok: false, message: 'must be a host name, not an IP address' });
    expect(overrideHost('*.example.com')).toMatchObject({ ok: false, message: expect.stringContaining('wildcards') });
  });

  it('a key is accepted exactly when a CONNECT to it is a name, and then it is that name', () => {
    const label = fc.stringMatching(/^[a-zA-Z0-9ü_-]{1,8}$/);
    const host = fc.tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([ls, dot]) => ls.join('.') + (dot ? '.' : ''));
    fc.assert(
      fc.property(host, (h) => {
        const norm = overrideHost(h);
        let target: string | undefined;
        try {
          const t = parseConnectAuthority(`${h}:443`);
          if (t.kind === 'name') target = t.host;
        } catch {
          target = undefined;
        }
        expect(norm.ok ? norm.host : undefined).toBe(target);
      }),
      { numRuns: 300 },
    );
  });
});

describe('client CIDRs are read by the ACL’s own parser', () => {
  it('accepts a bracketed IPv6 block (was refused by the config check, accepted by the ACL)', () => {
    const c = parseConfig('clients:\n  allow: ["[fd00::]/8", "10.0.0.0/8"]\n', noEnv);
    expect(c.clients.allow).toEqual(['[fd00::]/8', '10.0.0.0/8']);
    expect(compilePolicy(c).checkClient('fd00::1').verdict).toBe('allow');
  });

  it('refuses, once, what the ACL cannot read (was accepted here and refused by the policy)', () => {
    const e = issuesOf('clients:\n  deny: ["::ffff:10.0.0.0/80", "10.0.0.0/08"]\n');
    expect(e).toEqual({
      'clients.deny[0]': '"::ffff:10.0.0.0/80": an IPv4-mapped block needs a prefix length of 96 to 128',
      'clients.deny[1]': '"10.0.0.0/08": prefix length must be 0 to 32',
    });
  });
});

describe('rule names', () => {
  it('are unique regardless of case, reported once (the policy used to allow "CRL" next to "crl")', () => {
    const e = configError(() =>
      parseConfig('allow:\n  rules:\n    - { name: CRL, hosts: [a.example.com] }\n    - { name: crl, hosts: [b.example.com] }\n', noEnv),
    );
    expect(e.issues).toEqual([expect.objectContaining({ path: 'allow.rules[1].name', message: 'duplicate rule name "crl" (also allow.rules[0])' })]);
  });
});

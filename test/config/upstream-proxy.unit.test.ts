/**
 * upstreamProxy in the config file: its semantic checks (url, duplicates, username/password
 * pairs, bypass entries), its password as password / passwordFile / passwordEnv for each relay,
 * and check-config's warning for an inline one.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { runCheckConfig } from '../../src/cli/check-config.js';
import { configError, issueAt, tempDir, writeTemp } from './helpers.js';

const parse = (text: string, secretEnv: Record<string, string> = {}): ReturnType<typeof parseConfig> => parseConfig(text, { env: {}, secretEnv });

function relays(...lines: string[]): string {
  return ['upstreamProxy:', '  proxies:', ...lines.map((l) => `    ${l}`), ''].join('\n');
}

describe('upstreamProxy checks', () => {
  it('accepts relays with and without credentials, fills the defaults', () => {
    const c = parse(relays('- url: http://squid.corp.example:3128', '- { url: "http://[fd00::1]:8080", username: agent, password: pw }'));
    expect(c.upstreamProxy).toEqual({
      proxies: [{ url: 'http://squid.corp.example:3128' }, { url: 'http://[fd00::1]:8080', username: 'agent', password: 'pw' }],
      bypass: [],
      backoffMs: 30_000,
      connectMs: 10_000,
    });
  });

  it('refuses a url that is not http://host:port, naming what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['http://squid.corp.example', /needs an explicit port/],
      ['http://1.2.3:3128', /not a valid host name/],
      ['http://a..b:3128', /not a valid host name/],
      ['http://10.0.0.1:0', /port must be 1 to 65535/],
    ];
    for (const [url, message] of cases) {
      const err = configError(() => parse(relays(`- url: "${url}"`)));
      expect(issueAt(err, 'upstreamProxy.proxies[0].url').message, url).toMatch(message);
    }
    // A path is refused by the schema's pattern and by the check, which says why.
    const err = configError(() => parse(relays('- url: "http://squid.corp.example:3128/path"')));
    expect(err.issues.filter((i) => i.path === 'upstreamProxy.proxies[0].url').map((i) => i.message)).toContain('must be http://host:port with no path');
  });

  it('refuses the same relay twice', () => {
    const err = configError(() => parse(relays('- url: http://10.0.0.1:3128', '- url: http://10.0.0.1:3128')));
    expect(issueAt(err, 'upstreamProxy.proxies[1].url').message).toBe('same relay as upstreamProxy.proxies[0]');
  });

  it('refuses a username without any password spelling, and a password without a username', () => {
    const err = configError(() => parse(relays('- { url: "http://10.0.0.1:3128", username: agent }', '- { url: "http://10.0.0.2:3128", passwordEnv: PW }')));
    expect(issueAt(err, 'upstreamProxy.proxies[0].username').message).toBe('a username needs a password: give password, passwordFile or passwordEnv');
    expect(issueAt(err, 'upstreamProxy.proxies[1]').message).toBe('a password needs a username (Basic authentication sends both)');
  });

  it('checks bypass entries with the allowlist parser: names, wildcards, IPs and CIDRs; no templates', () => {
    const ok = parse(relays('- url: http://10.0.0.1:3128') + '  bypass: [intranet.corp.example, "*.corp.example", 10.0.0.0/8, "fd00::/8", 192.168.1.10]\n');
    expect(ok.upstreamProxy?.bypass).toHaveLength(5);
    const err = configError(() =>
      parse(relays('- url: http://10.0.0.1:3128') + '  bypass: ["{workspaceId}.ods.opinsights.azure.com", "*.com", "10.0.0.0/33"]\n'),
    );
    expect(issueAt(err, 'upstreamProxy.bypass[0]').message).toMatch(/templates .* are not supported in bypass/);
    expect(issueAt(err, 'upstreamProxy.bypass[1]').message).toMatch(/top-level|public suffix/);
    expect(issueAt(err, 'upstreamProxy.bypass[2]').message).toMatch(/./);
  });
});

describe('relay passwords outside the config file', () => {
  it('reads each relay password from its passwordFile or passwordEnv', () => {
    const file = join(tempDir(), 'relay.pw');
    writeFileSync(file, 'from-a-file\n', { mode: 0o600 });
    const c = parse(
      relays(
        `- { url: "http://10.0.0.1:3128", username: a, passwordFile: ${file} }`,
        '- { url: "http://10.0.0.2:3128", username: b, passwordEnv: PCL_RELAY_PW }',
      ),
      { PCL_RELAY_PW: 'from-the-env' },
    );
    expect(c.upstreamProxy?.proxies.map((p) => p.password)).toEqual(['from-a-file', 'from-the-env']);
  });

  it('names the relay key and the variable or file, never the value, when one cannot be read; refuses two spellings', () => {
    const err = configError(() =>
      parse(
        relays('- { url: "http://10.0.0.1:3128", username: a, password: x }', '- { url: "http://10.0.0.2:3128", username: b, passwordEnv: PCL_RELAY_UNSET }'),
      ),
    );
    expect(issueAt(err, 'upstreamProxy.proxies[1].passwordEnv')).toMatchObject({
      code: 'PCL_ERR_SECRET_ENV',
      message: 'environment variable PCL_RELAY_UNSET is not set',
    });
    const both = configError(() => parse(relays('- { url: "http://10.0.0.1:3128", username: a, password: x, passwordEnv: PW }')));
    expect(issueAt(both, 'upstreamProxy.proxies[0].passwordEnv').message).toBe('give only one of password, passwordEnv');
  });

  it('check-config warns when a readable file holds a relay password inline', () => {
    const file = writeTemp('relay.yaml', relays('- { url: "http://10.0.0.1:3128", username: a, password: inline-relay-secret }'));
    chmodSync(file, 0o644);
    const err: string[] = [];
    expect(runCheckConfig(file, [], { out: () => undefined, err: (s) => err.push(s) })).toBe(0);
    expect(err[0]).toMatch(
      /holds upstreamProxy\.proxies\[0\]\.password inline .* use upstreamProxy\.proxies\[0\]\.passwordFile or upstreamProxy\.proxies\[0\]\.passwordEnv/,
    );
    expect(err[0]).not.toContain('inline-relay-secret');
  });
});

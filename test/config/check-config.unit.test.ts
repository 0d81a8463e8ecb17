import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCheckConfig } from '../../src/cli/check-config.js';
import type { SemanticCheck } from '../../src/config/index.js';
import { tempDir, writeTemp } from './helpers.js';

function run(file: string, checks: SemanticCheck[] = []): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runCheckConfig(file, checks, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out, err };
}

describe('portcullis check-config', () => {
  it('prints OK and a summary, exit 0, for a valid file', () => {
    const file = writeTemp(
      'ok.yaml',
      'proxy:\n  listen: [":8080", "[::1]:8080"]\nallow:\n  rules:\n    - { name: crl, hosts: [crl.microsoft.com], ports: [80] }\n',
    );
    const r = run(file);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out[0]).toBe(`OK ${file}`);
    expect(r.out[1]).toContain(':8080, [::1]:8080');
    expect(r.out[1]).toContain('presets azure-public');
    expect(r.out[1]).toContain('1 rule');
  });

  it('checks the shipped example', () => {
    const example = new URL('../../config/portcullis.yaml', import.meta.url).pathname;
    expect(run(example).code).toBe(0);
  });

  it('prints every issue as <file>:<line>:<col> <path>: <message>, exit 1', () => {
    const file = writeTemp('bad.yaml', 'proxy:\n  lisen: x\nclients:\n  allow: ["10.0.0.0/99"]\n');
    const r = run(file);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    expect(r.err[0]).toBe(`${file}:2:3 proxy.lisen: unknown key (did you mean "listen"?)`);
    expect(r.err[1]).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}:4:11 clients\\.allow\\[0\\]: .*prefix length`));
    expect(r.err).toHaveLength(3);
    expect(r.err[2]).toBe(`2 errors in ${file}`);
  });

  it('includes issues from the checks it is given, located to their line', () => {
    const file = writeTemp('c.yaml', 'allow:\n  rules:\n    - name: all\n      hosts: ["a.example"]\n');
    const tooBroad: SemanticCheck = (c) =>
      c.allow.rules[0]?.hosts[0] === 'a.example' ? [{ path: ['allow', 'rules', 0, 'hosts', 0], message: 'matches every host' }] : [];
    const r = run(file, [tooBroad]);
    expect(r.code).toBe(1);
    expect(r.err[0]).toBe(`${file}:4:15 allow.rules[0].hosts[0]: matches every host`);
  });

  it('reports a YAML syntax error with its line, exit 1', () => {
    const file = writeTemp('syntax.yaml', 'log:\n  level: "info\n');
    const r = run(file);
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+:\\d+ YAML: `));
  });

  it('exits 2 when the file cannot be read', () => {
    const missing = join(tempDir(), 'missing.yaml');
    const r = run(missing);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([`${missing} cannot read config file: no such file`]);
  });

  it('checks the file alone, whatever PORTCULLIS_* says in the shell', () => {
    const before = process.env.PORTCULLIS_LOG_LEVEL;
    process.env.PORTCULLIS_LOG_LEVEL = 'nonsense';
    try {
      expect(run(writeTemp('p.yaml', 'log:\n  level: info\n')).code).toBe(0);
    } finally {
      if (before === undefined) delete process.env.PORTCULLIS_LOG_LEVEL;
      else process.env.PORTCULLIS_LOG_LEVEL = before;
    }
  });
});

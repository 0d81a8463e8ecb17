import { describe, expect, it } from 'vitest';
import { defaultConfig, loadConfigFile, parseConfig } from '../../src/config/index.js';
import { configError, writeTemp } from './helpers.js';

const file = 'proxy:\n  listen: ["0.0.0.0:8080"]\nadmin:\n  listen: "127.0.0.1:9464"\nlog:\n  level: info\n';

describe('environment overrides', () => {
  it('PORTCULLIS_LISTEN replaces the listen list; the others replace their key', () => {
    const c = loadConfigFile(writeTemp('p.yaml', file), {
      env: { PORTCULLIS_LISTEN: '10.0.0.5:3128, [::1]:3128', PORTCULLIS_ADMIN_LISTEN: '0.0.0.0:9999', PORTCULLIS_LOG_LEVEL: 'DEBUG' },
    });
    expect(c.proxy.listen).toEqual(['10.0.0.5:3128', '[::1]:3128']);
    expect(c.admin.listen).toBe('0.0.0.0:9999');
    expect(c.log.level).toBe('debug');
  });

  it('applies to the built-in default too', () => {
    expect(defaultConfig({ PORTCULLIS_LISTEN: ':3128' }).proxy.listen).toEqual([':3128']);
    expect(defaultConfig({}).proxy.listen).toEqual(['0.0.0.0:8080']);
  });

  it('treats an empty variable as unset', () => {
    expect(parseConfig(file, { env: { PORTCULLIS_LISTEN: '', PORTCULLIS_LOG_LEVEL: '  ' } }).proxy.listen).toEqual(['0.0.0.0:8080']);
  });

  it('rejects invalid values with an error that names the variable', () => {
    const err = configError(() =>
      parseConfig(file, {
        source: 'p.yaml',
        env: { PORTCULLIS_LISTEN: '0.0.0.0:8080,nonsense', PORTCULLIS_ADMIN_LISTEN: '1.2.3.4', PORTCULLIS_LOG_LEVEL: 'loud' },
      }),
    );
    expect(err.code).toBe('PCL_ERR_CONFIG');
    const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i]));
    expect(byPath['proxy.listen']?.message).toContain('PORTCULLIS_LISTEN');
    expect(byPath['proxy.listen']?.message).toContain('nonsense');
    expect(byPath['admin.listen']?.message).toContain('PORTCULLIS_ADMIN_LISTEN');
    expect(byPath['log.level']?.message).toContain('PORTCULLIS_LOG_LEVEL');
    expect(err.issues.every((i) => i.line === undefined)).toBe(true);
    expect(err.message).toContain('p.yaml log.level: environment variable PORTCULLIS_LOG_LEVEL="loud"');
  });

  it('rejects a listen list with the same address twice, and an admin override on a proxy address', () => {
    expect(configError(() => defaultConfig({ PORTCULLIS_LISTEN: ':8080,0.0.0.0:8080' })).issues[0]?.message).toContain('PORTCULLIS_LISTEN');
    expect(configError(() => defaultConfig({ PORTCULLIS_ADMIN_LISTEN: '127.0.0.1:8080' })).issues[0]?.message).toContain('overlaps');
  });

  it('reports bad variables together with the errors in the file', () => {
    const err = configError(() => parseConfig('log:\n  level: loud\n', { env: { PORTCULLIS_LOG_LEVEL: 'noisy' } }));
    expect(err.issues.map((i) => [i.path, i.line])).toEqual([
      ['log.level', 2],
      ['log.level', undefined],
    ]);
  });
});

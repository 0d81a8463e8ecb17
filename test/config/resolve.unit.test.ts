import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_PATH, defaultConfig, loadConfigFile, resolveConfig } from '../../src/config/index.js';
import { configError, tempDir, writeTemp } from './helpers.js';

describe('loadConfigFile', () => {
  it('says clearly when the file does not exist', () => {
    const missing = join(tempDir(), 'nope.yaml');
    const err = configError(() => loadConfigFile(missing, { env: {} }));
    expect(err.code).toBe('PCL_ERR_CONFIG');
    expect(err.message).toContain(missing);
    expect(err.message).toContain('no such file');
  });

  it('says clearly when the path is a directory', () => {
    expect(configError(() => loadConfigFile(tempDir(), { env: {} })).message).toContain('is a directory');
  });

  it.skipIf(process.getuid?.() === 0)('says clearly when the file is not readable', () => {
    const file = writeTemp('secret.yaml', 'log: {}\n');
    chmodSync(file, 0o000);
    expect(configError(() => loadConfigFile(file, { env: {} })).message).toContain('permission denied');
  });
});

describe('resolveConfig', () => {
  it('uses --config when given', () => {
    const file = writeTemp('p.yaml', 'log:\n  level: warn\n');
    const r = resolveConfig(file, { env: {} });
    expect(r.source).toBe(file);
    expect(r.config.log.level).toBe('warn');
  });

  it('does not fall back when --config names a missing file', () => {
    expect(() => resolveConfig(join(tempDir(), 'missing.yaml'), { env: {} })).toThrow(/no such file/);
  });

  it('uses the default path when that file exists', () => {
    const file = writeTemp('portcullis.yaml', 'proxy:\n  mode: report\n');
    const r = resolveConfig(undefined, { env: {} }, file);
    expect(r).toMatchObject({ source: file, config: { proxy: { mode: 'report' } } });
  });

  it('falls back to the built-in default when there is no file, with env overrides applied', () => {
    const r = resolveConfig(undefined, { env: { PORTCULLIS_LOG_LEVEL: 'warn' } }, join(tempDir(), 'absent.yaml'));
    expect(r.source).toBe('built-in default');
    expect(r.config).toEqual({ ...defaultConfig({}), log: { level: 'warn', access: true } });
    expect(r.config.allow.presets).toEqual(['azure-public']);
    expect(r.config.proxy.listen).toEqual(['0.0.0.0:8080']);
    expect(r.config.admin.listen).toBe('127.0.0.1:9464');
  });

  it('defaults to /etc/portcullis/portcullis.yaml', () => {
    expect(DEFAULT_CONFIG_PATH).toBe('/etc/portcullis/portcullis.yaml');
  });
});

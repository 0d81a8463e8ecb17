import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { runCheckConfig } from '../../src/cli/check-config.js';
import { configError, tempDir, writeTemp } from './helpers.js';

const TOKEN = 'a-token-long-enough-0123456789';

function secretFile(content: string): string {
  const file = join(tempDir(), 'admin.token');
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

describe('secrets outside the config file: <key>File and <key>Env', () => {
  it('reads admin.token from admin.tokenFile, without the trailing newline', () => {
    const file = secretFile(`${TOKEN}\n`);
    const c = parseConfig(`admin:\n  tokenFile: ${file}\n`, { env: {}, secretEnv: {} });
    expect(c.admin.token).toBe(TOKEN);
  });

  it('reads admin.token from the variable admin.tokenEnv names', () => {
    const c = parseConfig('admin:\n  tokenEnv: PCL_TEST_TOKEN\n', { env: {}, secretEnv: { PCL_TEST_TOKEN: TOKEN } });
    expect(c.admin.token).toBe(TOKEN);
  });

  it('refuses more than one spelling of the same secret', () => {
    const file = secretFile(TOKEN);
    const err = configError(() => parseConfig(`admin:\n  token: ${TOKEN}\n  tokenFile: ${file}\n`, { env: {}, secretEnv: {} }));
    expect(err.issues).toEqual([expect.objectContaining({ path: 'admin.tokenFile', line: 3, message: 'give only one of token, tokenFile' })]);
  });

  it('names the key and the file, with PCL_ERR_SECRET_FILE, when the file cannot be read or is empty', () => {
    const missing = join(tempDir(), 'nope');
    const err = configError(() => parseConfig(`admin:\n  tokenFile: ${missing}\n`, { env: {}, secretEnv: {} }));
    expect(err.issues).toEqual([{ path: 'admin.tokenFile', line: 2, column: 14, message: `cannot read ${missing} (ENOENT)`, code: 'PCL_ERR_SECRET_FILE' }]);
    expect(err.message).toContain(`admin.tokenFile: cannot read ${missing} (ENOENT) (PCL_ERR_SECRET_FILE)`);
    const empty = secretFile('\n');
    expect(configError(() => parseConfig(`admin:\n  tokenFile: ${empty}\n`, { env: {}, secretEnv: {} })).issues[0]).toMatchObject({
      code: 'PCL_ERR_SECRET_FILE',
      message: `${empty} is empty`,
    });
  });

  it('names the variable, with PCL_ERR_SECRET_ENV, when it is not set', () => {
    const err = configError(() => parseConfig('admin:\n  tokenEnv: PCL_TEST_UNSET\n', { env: {}, secretEnv: {} }));
    expect(err.issues[0]).toMatchObject({ path: 'admin.tokenEnv', code: 'PCL_ERR_SECRET_ENV', message: 'environment variable PCL_TEST_UNSET is not set' });
  });

  it('refuses a secret too short to be a token, without ever printing it', () => {
    const secret = 'short-secret';
    for (const [text, secretEnv] of [
      [`admin:\n  tokenFile: ${secretFile(secret)}\n`, {}],
      ['admin:\n  tokenEnv: PCL_TEST_TOKEN\n', { PCL_TEST_TOKEN: secret }],
    ] as const) {
      const err = configError(() => parseConfig(text, { env: {}, secretEnv }));
      expect(err.issues[0]).toMatchObject({ code: 'PCL_ERR_SECRET_VALUE', message: 'the secret it holds is shorter than 16 characters' });
      expect(err.message).not.toContain(secret);
    }
  });
});

describe('check-config and inline secrets', () => {
  function run(file: string): { code: number; err: string[] } {
    const err: string[] = [];
    const code = runCheckConfig(file, [], { out: () => undefined, err: (s) => err.push(s) });
    return { code, err };
  }

  it('warns (exit 0) when a file holding an inline token is readable by group or other, and names neither the token', () => {
    const file = writeTemp('inline.yaml', `admin:\n  token: ${TOKEN}\n`);
    chmodSync(file, 0o644);
    const r = run(file);
    expect(r.code).toBe(0);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(
      /^warning: .* holds admin\.token inline and is readable by every user \(mode 0644\): chmod 600 it, or use admin\.tokenFile or admin\.tokenEnv \(PCL_ERR_SECRET_MODE\)$/,
    );
    expect(r.err[0]).not.toContain(TOKEN);
    chmodSync(file, 0o640);
    expect(run(file).err[0]).toContain('readable by its group (mode 0640)');
  });

  it('is quiet for a private file, and for a token kept in its own file', () => {
    const inline = writeTemp('private.yaml', `admin:\n  token: ${TOKEN}\n`);
    chmodSync(inline, 0o600);
    expect(run(inline)).toEqual({ code: 0, err: [] });
    const byFile = writeTemp('by-file.yaml', `admin:\n  tokenFile: ${secretFile(TOKEN)}\n`);
    chmodSync(byFile, 0o644);
    expect(run(byFile)).toEqual({ code: 0, err: [] });
  });
});

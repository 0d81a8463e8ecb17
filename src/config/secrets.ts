/**
 * Secrets outside the config file. Every secret key `<name>` may be given as `<name>File` (a path
 * whose content, without surrounding whitespace, is the secret) or `<name>Env` (an environment
 * variable holding it) instead of inline: the spelling the forwarder's keys already use
 * (`sharedKeyFile`/`sharedKeyEnv`, `keyFile`/`keyEnv`, `secretFile`/`secretEnv`). The loader
 * resolves the gateway's own inline-capable secrets here, so the rest of the code reads
 * `admin.token` as before; a message names the key and the file or variable, never the value.
 */
import { readFileSync } from 'node:fs';
import type { PortcullisConfig } from './types.js';
import type { Env } from './env.js';
import { errorCode } from '../util/errors.js';

/** Why a secret could not be resolved: stable codes for operators' searches. */
export const SecretErrors = {
  FILE: 'PCL_ERR_SECRET_FILE',
  ENV: 'PCL_ERR_SECRET_ENV',
  VALUE: 'PCL_ERR_SECRET_VALUE',
} as const;

export interface SecretIssue {
  path: Array<string | number>;
  code: (typeof SecretErrors)[keyof typeof SecretErrors];
  message: string;
}

/** A secret the config may hold inline: where it lives and what a usable value is. */
interface InlineSecret {
  /** Path of the object holding it, and the key of the inline value. */
  parent: readonly string[];
  key: string;
  minLength: number;
}

/** Every secret that can be written inline in the file (today: the admin API's bearer token). */
const INLINE_SECRETS: readonly InlineSecret[] = [{ parent: ['admin'], key: 'token', minLength: 16 }];

function objectAt(root: unknown, path: readonly string[]): Record<string, unknown> | undefined {
  let node: unknown = root;
  for (const seg of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[seg];
  }
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : undefined;
}

/** Each secret key's three spellings: at most one may be given (a schema-level check on the raw data). */
export function secretSpellingIssues(root: unknown): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  for (const s of INLINE_SECRETS) {
    const obj = objectAt(root, s.parent);
    if (!obj) continue;
    const given = [s.key, `${s.key}File`, `${s.key}Env`].filter((k) => obj[k] !== undefined);
    if (given.length > 1) out.push({ path: [...s.parent, given[1] ?? s.key], message: `give only one of ${given.join(', ')}` });
  }
  return out;
}

/**
 * Read `<key>File` / `<key>Env` into `<key>` (in place) for every inline-capable secret. Issues
 * name the key and the file or variable; the value never appears in them.
 */
export function resolveSecrets(config: PortcullisConfig, env: Env): SecretIssue[] {
  const issues: SecretIssue[] = [];
  for (const s of INLINE_SECRETS) {
    const obj = objectAt(config, s.parent);
    if (!obj) continue;
    const fileKey = `${s.key}File`;
    const envKey = `${s.key}Env`;
    const file = obj[fileKey];
    const name = obj[envKey];
    let value: string;
    let from: string[];
    if (typeof file === 'string') {
      from = [...s.parent, fileKey];
      try {
        value = readFileSync(file, 'utf8').trim();
      } catch (err) {
        issues.push({ path: from, code: SecretErrors.FILE, message: `cannot read ${file} (${errorCode(err) ?? 'error'})` });
        continue;
      }
      if (value === '') {
        issues.push({ path: from, code: SecretErrors.FILE, message: `${file} is empty` });
        continue;
      }
    } else if (typeof name === 'string') {
      from = [...s.parent, envKey];
      const v = env[name]?.trim();
      if (v === undefined || v === '') {
        issues.push({ path: from, code: SecretErrors.ENV, message: `environment variable ${name} is not set` });
        continue;
      }
      value = v;
    } else {
      continue;
    }
    if (value.length < s.minLength) {
      issues.push({ path: from, code: SecretErrors.VALUE, message: `the secret it holds is shorter than ${s.minLength} characters` });
      continue;
    }
    obj[s.key] = value;
  }
  return issues;
}

/** Paths (`admin.token`) of secrets written inline in the file itself, for check-config's file-mode warning. */
export function inlineSecretPaths(root: unknown): string[] {
  const out: string[] = [];
  for (const s of INLINE_SECRETS) {
    const obj = objectAt(root, s.parent);
    if (obj && typeof obj[s.key] === 'string') out.push([...s.parent, s.key].join('.'));
  }
  return out;
}

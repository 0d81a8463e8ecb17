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
  /** Path of the object holding it (`*` = every item of the array there), and the key of the inline value. */
  parent: readonly string[];
  key: string;
  minLength: number;
}

/** Every secret that can be written inline in the file: the admin API's bearer token and each relay proxy's password. */
const INLINE_SECRETS: readonly InlineSecret[] = [
  { parent: ['admin'], key: 'token', minLength: 16 },
  { parent: ['upstreamProxy', 'proxies', '*'], key: 'password', minLength: 1 },
];

/** One object that holds (or may hold) a secret, with its concrete path (`*` replaced by each index). */
interface SecretSite {
  secret: InlineSecret;
  path: Array<string | number>;
  obj: Record<string, unknown>;
}

function asObject(node: unknown): Record<string, unknown> | undefined {
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : undefined;
}

/** The objects at `path` (one per array item where a segment is `*`), with their concrete paths. */
function objectsAt(root: unknown, path: readonly string[]): Array<{ path: Array<string | number>; obj: Record<string, unknown> }> {
  let level: Array<{ path: Array<string | number>; node: unknown }> = [{ path: [], node: root }];
  for (const seg of path) {
    const next: typeof level = [];
    for (const { path: p, node } of level) {
      if (seg === '*') {
        if (Array.isArray(node)) node.forEach((item: unknown, i) => next.push({ path: [...p, i], node: item }));
      } else {
        const obj = asObject(node);
        if (obj) next.push({ path: [...p, seg], node: obj[seg] });
      }
    }
    level = next;
  }
  const out: Array<{ path: Array<string | number>; obj: Record<string, unknown> }> = [];
  for (const { path: p, node } of level) {
    const obj = asObject(node);
    if (obj) out.push({ path: p, obj });
  }
  return out;
}

function secretSites(root: unknown): SecretSite[] {
  return INLINE_SECRETS.flatMap((secret) => objectsAt(root, secret.parent).map(({ path, obj }) => ({ secret, path, obj })));
}

/** Each secret key's three spellings: at most one may be given (a schema-level check on the raw data). */
export function secretSpellingIssues(root: unknown): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  for (const { secret: s, path, obj } of secretSites(root)) {
    const given = [s.key, `${s.key}File`, `${s.key}Env`].filter((k) => obj[k] !== undefined);
    if (given.length > 1) out.push({ path: [...path, given[1] ?? s.key], message: `give only one of ${given.join(', ')}` });
  }
  return out;
}

/**
 * Read `<key>File` / `<key>Env` into `<key>` (in place) for every inline-capable secret. Issues
 * name the key and the file or variable; the value never appears in them.
 */
export function resolveSecrets(config: PortcullisConfig, env: Env): SecretIssue[] {
  const issues: SecretIssue[] = [];
  for (const { secret: s, path, obj } of secretSites(config)) {
    const fileKey = `${s.key}File`;
    const envKey = `${s.key}Env`;
    const file = obj[fileKey];
    const name = obj[envKey];
    let value: string;
    let from: Array<string | number>;
    if (typeof file === 'string') {
      from = [...path, fileKey];
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
      from = [...path, envKey];
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

/** `upstreamProxy.proxies[0].password`: how check-config names a secret's key. */
function formatSecretPath(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Paths (`admin.token`, `upstreamProxy.proxies[0].password`) of secrets written inline in the file itself, for check-config's file-mode warning. */
export function inlineSecretPaths(root: unknown): string[] {
  const out: string[] = [];
  for (const { secret: s, path, obj } of secretSites(root)) {
    if (typeof obj[s.key] === 'string') out.push(formatSecretPath([...path, s.key]));
  }
  return out;
}

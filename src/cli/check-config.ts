import { ConfigError, parseConfig, type PortcullisConfig, type SemanticCheck } from '../config/index.js';
import { formatIssue } from '../config/errors.js';
import { readConfigText } from '../config/load.js';
import { inlineSecretPaths } from '../config/secrets.js';
import { statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export interface CheckConfigIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

/**
 * `portcullis check-config FILE`. Exit code: 0 valid, 1 invalid (every issue printed as
 * `<file>:<line>:<col> <path>: <message>`), 2 the file cannot be read.
 * Checks the file alone: PORTCULLIS_* environment overrides are not applied (`<secret>Env` keys
 * are looked up in this environment). Warns, without failing, when a secret written inline sits in
 * a file other users can read.
 */
export function runCheckConfig(file: string, checks: SemanticCheck[], io: CheckConfigIo): number {
  let text: string;
  try {
    text = readConfigText(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) io.err(formatIssue(file, issue));
    return 2;
  }
  const exposed = exposedSecretWarning(file, text);
  if (exposed) io.err(exposed);
  let config: PortcullisConfig;
  try {
    config = parseConfig(text, { source: file, checks, env: {} });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) io.err(formatIssue(file, issue));
    const n = err.issues.length;
    io.err(`${n} ${n === 1 ? 'error' : 'errors'} in ${file}`);
    return 1;
  }
  io.out(`OK ${file}`);
  io.out(summary(config));
  return 0;
}

/** Code of the warning for an inline secret in a file group or other can read. */
export const SECRET_MODE_WARNING = 'PCL_ERR_SECRET_MODE';

/** A warning line when the file holds an inline secret and group or other may read it, else null. */
export function exposedSecretWarning(file: string, text: string): string | null {
  let raw: unknown;
  let mode: number;
  try {
    raw = parseYaml(text);
    mode = statSync(file).mode & 0o777;
  } catch {
    return null; // unparseable YAML is reported by the check itself
  }
  const paths = inlineSecretPaths(raw);
  if (paths.length === 0 || (mode & 0o044) === 0) return null;
  const octal = mode.toString(8).padStart(4, '0');
  const fileKeys = paths.map((p) => `${p}File or ${p}Env`).join(', ');
  return `warning: ${file} holds ${paths.join(', ')} inline and is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${octal}): chmod 600 it, or use ${fileKeys} (${SECRET_MODE_WARNING})`;
}

function summary(c: PortcullisConfig): string {
  const n = c.allow.rules.length;
  const clients = c.clients.allow === undefined ? 'any client' : `${c.clients.allow.length} client ranges`;
  return [
    `proxy ${c.proxy.listen.join(', ')} (${c.proxy.mode})`,
    `admin ${c.admin.listen}`,
    `presets ${c.allow.presets.length ? c.allow.presets.join(', ') : 'none'}`,
    `${c.allow.workspaces.length} ${c.allow.workspaces.length === 1 ? 'workspace' : 'workspaces'}`,
    `${n} ${n === 1 ? 'rule' : 'rules'}`,
    clients,
  ].join('; ');
}

import { ConfigError, parseConfig, type PortcullisConfig, type SemanticCheck } from '../config/index.js';
import { formatIssue } from '../config/errors.js';
import { readConfigText } from '../config/load.js';

export interface CheckConfigIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

/**
 * `portcullis check-config FILE`. Exit code: 0 valid, 1 invalid (every issue printed as
 * `<file>:<line>:<col> <path>: <message>`), 2 the file cannot be read.
 * Checks the file alone: PORTCULLIS_* environment overrides are not applied.
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

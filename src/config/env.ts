import type { PortcullisConfig, LogConfig } from './types.js';
import type { ConfigIssue } from './errors.js';
import { parseListenAddress, type ListenAddress } from './listen.js';
import { overlaps } from './checks.js';
import { errorMessage } from '../util/errors.js';

export type Env = Record<string, string | undefined>;

const LEVELS: ReadonlyArray<LogConfig['level']> = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Empty counts as unset: systemd EnvironmentFile= and compose files often carry `VAR=`. */
function get(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/**
 * Per-host settings from the environment, applied over the file. Returns the issues found in the
 * variables (each names its variable; no line, they are not in the file).
 */
export function applyEnvOverrides(config: PortcullisConfig | undefined, env: Env): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const bad = (path: string, name: string, why: string): void => {
    issues.push({ path, message: `environment variable ${name}=${JSON.stringify(env[name])}: ${why}` });
  };

  let listen: string[] | undefined;
  const listenVar = get(env, 'PORTCULLIS_LISTEN');
  if (listenVar !== undefined) {
    const parts = listenVar.split(',').map((s) => s.trim());
    const parsed: ListenAddress[] = [];
    let ok = true;
    for (const p of parts) {
      try {
        const addr = parseListenAddress(p);
        if (parsed.some((q) => overlaps(q, addr))) {
          bad('proxy.listen', 'PORTCULLIS_LISTEN', `"${p}" repeats or overlaps an earlier address`);
          ok = false;
        }
        parsed.push(addr);
      } catch (err) {
        bad('proxy.listen', 'PORTCULLIS_LISTEN', p === '' ? 'empty entry in the list' : errorMessage(err));
        ok = false;
      }
    }
    if (ok) listen = parts;
  }

  let adminListen: string | undefined;
  const adminVar = get(env, 'PORTCULLIS_ADMIN_LISTEN');
  if (adminVar !== undefined) {
    try {
      parseListenAddress(adminVar);
      adminListen = adminVar;
    } catch (err) {
      bad('admin.listen', 'PORTCULLIS_ADMIN_LISTEN', errorMessage(err));
    }
  }

  let level: LogConfig['level'] | undefined;
  const levelVar = get(env, 'PORTCULLIS_LOG_LEVEL');
  if (levelVar !== undefined) {
    const l = levelVar.toLowerCase();
    level = LEVELS.find((known) => known === l);
    if (level === undefined) bad('log.level', 'PORTCULLIS_LOG_LEVEL', `must be one of ${LEVELS.join(', ')}`);
  }

  if (!config || issues.length > 0) return issues;
  if (listen) config.proxy.listen = listen;
  if (adminListen !== undefined) config.admin.listen = adminListen;
  if (level) config.log.level = level;

  // An override may now collide with a listener from the file (or the other override).
  if (listen || adminListen !== undefined) {
    const admin = parseListenAddress(config.admin.listen);
    if (config.proxy.listen.some((s) => overlaps(parseListenAddress(s), admin))) {
      const name = adminListen !== undefined ? 'PORTCULLIS_ADMIN_LISTEN' : 'PORTCULLIS_LISTEN';
      issues.push({
        path: adminListen !== undefined ? 'admin.listen' : 'proxy.listen',
        message: `environment variable ${name}: admin.listen (${config.admin.listen}) overlaps a proxy listener (${config.proxy.listen.join(', ')})`,
      });
    }
  }
  return issues;
}

import { existsSync, readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { PortcullisConfig } from './types.js';
import { ConfigError, formatPath, type ConfigIssue } from './errors.js';
import { SourceMap, keyAt } from './locate.js';
import { validateSchema, type RawIssue } from './schema.js';
import { builtinChecks, overrideHost } from './checks.js';
import { applyEnvOverrides, type Env } from './env.js';
import { errorCode, errorMessage, firstLine } from '../util/errors.js';
import { resolveSecrets, secretSpellingIssues } from './secrets.js';

/**
 * A check that needs a fact about the host the config runs on (is the native relay built?), which
 * the caller finds out and injects: this module loads nothing native. Checks of the file's own
 * meaning are built in (checks.ts). Paths are segments: ['proxy', 'relay'].
 */
export type SemanticCheck = (config: PortcullisConfig) => Array<{ path: Array<string | number>; message: string }>;

export interface LoadOptions {
  /** Name used in messages (the file name); default `<config>`. */
  source?: string;
  /** Host-fact checks (see SemanticCheck); none by default. */
  checks?: SemanticCheck[];
  /** For PORTCULLIS_* overrides; default process.env. */
  env?: Record<string, string | undefined>;
  /** Where `<secret>Env` keys are looked up; default process.env (even when `env` is given: a check judges the file, not the overrides). */
  secretEnv?: Record<string, string | undefined>;
}

export const DEFAULT_CONFIG_PATH = '/etc/portcullis/portcullis.yaml';
export const BUILT_IN_SOURCE = 'built-in default';

/**
 * YAML → schema (defaults filled) → built-in checks → opts.checks → environment overrides.
 * Throws ConfigError listing every issue found, each with its line.
 */
export function parseConfig(text: string, opts: LoadOptions = {}): PortcullisConfig {
  const source = opts.source ?? '<config>';
  const env: Env = opts.env ?? process.env;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  const map = new SourceMap(doc, lines);

  if (doc.errors.length > 0) {
    // The tree after a syntax error is a guess; checking it would add noise, not information.
    const issues: ConfigIssue[] = doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      const message = firstLine(e.message).replace(/ at line \d+, column \d+:?$/, '');
      const dup = e.code === 'DUPLICATE_KEY' ? keyAt(doc, e.pos[0]) : undefined;
      if (dup) return { path: formatPath(dup.path), line: pos.line, column: pos.col, message: 'duplicate key (YAML keys must be unique)' };
      return { path: '', line: pos.line, column: pos.col, message: `YAML: ${message}` };
    });
    throw new ConfigError(source, sortIssues([...issues, ...applyEnvOverrides(undefined, env)]));
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(source, [{ path: '', line: 1, column: 1, message: `YAML: ${errorMessage(err)}` }], { cause: err });
  }
  // An empty file (or only comments) means all defaults.
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    const loc = map.locate([]);
    throw new ConfigError(source, [{ path: '', ...loc, message: 'the file must be a mapping of keys (proxy, allow, clients, dns, admin, log)' }]);
  }

  const raw = checkData(data, opts.checks ?? []);
  const issues = raw.map((r) => toConfigIssue(r, map));
  // No issues: the schema accepted the data (and filled its defaults), so it is a PortcullisConfig.
  const config = issues.length === 0 ? normalize(data as PortcullisConfig) : undefined;
  if (config) {
    for (const s of resolveSecrets(config, opts.secretEnv ?? process.env))
      issues.push({ path: formatPath(s.path), ...map.locate(s.path), message: s.message, code: s.code });
  }
  issues.push(...applyEnvOverrides(config, env));
  if (issues.length > 0 || !config) throw new ConfigError(source, sortIssues(issues));
  return config;
}

/** Schema (fills defaults in place), built-in checks, then the injected ones: every issue, in one pass. */
function checkData(data: unknown, checks: readonly SemanticCheck[]): RawIssue[] {
  const raw: RawIssue[] = [...validateSchema(data), ...builtinChecks(data), ...secretSpellingIssues(data)];
  const dataIsSuspect = raw.length > 0;
  for (const check of checks) {
    try {
      // Typed as valid, but may not be when the schema found issues: that is what the catch is for.
      raw.push(...check(data as PortcullisConfig));
    } catch (err) {
      // A check may trip over data the schema already rejected; those errors are reported. Otherwise it is a bug.
      if (!dataIsSuspect) throw err;
    }
  }
  return raw;
}

/**
 * The loader's checks (schema and built-in) on a config object that did not come from a file, e.g.
 * one a caller built in code. The object is not modified.
 */
export function configIssues(config: PortcullisConfig): RawIssue[] {
  return checkData(structuredClone(config), []);
}

function toConfigIssue(r: RawIssue, map: SourceMap): ConfigIssue {
  return { path: formatPath(r.path), ...map.locate(r.path, r.at), message: r.message };
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  const key = (i: ConfigIssue): number => (i.line === undefined ? Infinity : i.line * 1e6 + (i.column ?? 0));
  return [...issues].sort((a, b) => key(a) - key(b));
}

/** Host names in dns.overrides are compared like targets (the checks made sure each one normalises). */
function normalize(config: PortcullisConfig): PortcullisConfig {
  const overrides: Record<string, string> = {};
  for (const [host, ip] of Object.entries(config.dns.overrides)) {
    const norm = overrideHost(host);
    overrides[norm.ok ? norm.host : host] = ip;
  }
  config.dns.overrides = overrides;
  return config;
}

/** The file's text, or a ConfigError that says why it cannot be read. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = errorCode(err);
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : errorMessage(err);
    throw new ConfigError(file, [{ path: '', message: `cannot read config file: ${why}` }], { cause: err });
  }
}

export function loadConfigFile(file: string, opts: LoadOptions = {}): PortcullisConfig {
  return parseConfig(readConfigText(file), { ...opts, source: opts.source ?? file });
}

/** All defaults: Azure public preset, proxy on 0.0.0.0:8080, admin on 127.0.0.1:9464; environment overrides applied. */
export function defaultConfig(env: Env = process.env): PortcullisConfig {
  const data = {};
  const issues = validateSchema(data);
  // Cannot happen unless the schema's defaults contradict the schema; the schema test guards this.
  if (issues.length > 0) throw new Error(`schema defaults are invalid: ${issues.map((i) => i.message).join('; ')}`);
  const config = data as PortcullisConfig;
  const envIssues = applyEnvOverrides(config, env);
  if (envIssues.length > 0) throw new ConfigError(BUILT_IN_SOURCE, envIssues);
  return config;
}

/**
 * `--config FILE` if given (a missing file is an error, not a fallback); else the default path if
 * it exists; else the built-in default. `defaultPath` is for tests.
 */
export function resolveConfig(
  cliPath: string | undefined,
  opts: LoadOptions = {},
  defaultPath: string = DEFAULT_CONFIG_PATH,
): { config: PortcullisConfig; source: string } {
  if (cliPath !== undefined) return { config: loadConfigFile(cliPath, opts), source: cliPath };
  if (existsSync(defaultPath)) return { config: loadConfigFile(defaultPath, opts), source: defaultPath };
  return { config: defaultConfig(opts.env ?? process.env), source: BUILT_IN_SOURCE };
}

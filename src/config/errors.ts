import { PortcullisError } from '../util/errors.js';

/** One problem found in a configuration. `line`/`column` are 1-based and absent when unknown (e.g. environment). */
export interface ConfigIssue {
  /** Like `allow.rules[0].ports[1]`; empty for the document as a whole. */
  path: string;
  line?: number;
  column?: number;
  message: string;
  /** A more specific PCL_ERR_* code than the configuration's own, where one applies (secrets). */
  code?: string;
}

export const CONFIG_ERROR_CODE = 'PCL_ERR_CONFIG';

/** `<source>:<line>:<col> <path>: <message>`; parts that are unknown are left out. */
export function formatIssue(source: string, issue: ConfigIssue): string {
  const where = issue.line !== undefined ? `${source}:${issue.line}:${issue.column ?? 1}` : source;
  const message = issue.code !== undefined ? `${issue.message} (${issue.code})` : issue.message;
  return issue.path ? `${where} ${issue.path}: ${message}` : `${where} ${message}`;
}

/** Every problem found in one configuration, so the operator can fix them all in one go. */
export class ConfigError extends PortcullisError {
  readonly issues: ConfigIssue[];
  /** File name, or e.g. `built-in default`. */
  readonly source: string;

  constructor(source: string, issues: ConfigIssue[], options?: { cause?: unknown }) {
    const n = issues.length;
    const head = `invalid configuration (${source}): ${n} ${n === 1 ? 'error' : 'errors'}`;
    super(CONFIG_ERROR_CODE, [head, ...issues.map((i) => `  ${formatIssue(source, i)}`)].join('\n'), options);
    this.name = 'ConfigError';
    this.issues = issues;
    this.source = source;
  }
}

/** Path segments → `allow.rules[0].ports[1]`; keys that are not identifiers are quoted: `dns.overrides["a.b"]`. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * What the admin API and the management CLI show of a configuration: the same views whether they
 * come from the running gateway or from the file, secrets never included, and the difference
 * between two configurations as a list of changed keys ("what changed" after an edit).
 */
import type { DestinationRuleConfig, PortcullisConfig, UpstreamProxyConfig, WorkspaceConfig } from './types.js';
import { formatPath } from './errors.js';

/** Shown instead of a secret's value. */
export const REDACTED = '[redacted]';

/** Where an upstream proxy's password comes from; its value is never shown. */
export type PasswordSource = { source: 'none' } | { source: 'inline' } | { source: 'file'; file: string } | { source: 'env'; env: string };

export interface RelayProxyView {
  url: string;
  username?: string;
  password: PasswordSource;
}

export interface RelayView {
  /** false: no upstreamProxy key, destinations are dialled directly. */
  configured: boolean;
  proxies: RelayProxyView[];
  bypass: string[];
  backoffMs?: number;
  connectMs?: number;
}

export interface AllowView {
  presets: string[];
  workspaces: WorkspaceConfig[];
  regions: string[];
  rules: DestinationRuleConfig[];
}

export interface CertificatesView {
  subjects: string[];
  thumbprintsSha256: string[];
}

export function allowView(config: PortcullisConfig): AllowView {
  const { presets, workspaces, regions, rules } = config.allow;
  return structuredClone({ presets, workspaces, regions, rules });
}

export function passwordSource(entry: { password?: string; passwordFile?: string; passwordEnv?: string }): PasswordSource {
  if (entry.passwordFile !== undefined) return { source: 'file', file: entry.passwordFile };
  if (entry.passwordEnv !== undefined) return { source: 'env', env: entry.passwordEnv };
  if (entry.password !== undefined) return { source: 'inline' };
  return { source: 'none' };
}

export function relayView(config: PortcullisConfig): RelayView {
  const up: UpstreamProxyConfig | undefined = config.upstreamProxy;
  if (!up) return { configured: false, proxies: [], bypass: [] };
  return {
    configured: true,
    proxies: up.proxies.map((p) => ({ url: p.url, ...(p.username !== undefined ? { username: p.username } : {}), password: passwordSource(p) })),
    bypass: [...up.bypass],
    backoffMs: up.backoffMs,
    connectMs: up.connectMs,
  };
}

export function certificatesView(config: PortcullisConfig): CertificatesView {
  const { subjects, thumbprintsSha256 } = config.clients.certificates;
  return { subjects: [...subjects], thumbprintsSha256: [...thumbprintsSha256] };
}

/** Paths of secret values that a configuration may hold once loaded (inline, or read from their file or variable). */
function secretPaths(config: PortcullisConfig): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [['admin', 'token']];
  config.upstreamProxy?.proxies.forEach((_, i) => out.push(['upstreamProxy', 'proxies', i, 'password']));
  return out;
}

/** A deep copy with every secret value replaced by REDACTED (keys that are absent stay absent). */
export function redactedConfig(config: PortcullisConfig): PortcullisConfig {
  const copy = structuredClone(config);
  for (const path of secretPaths(copy)) {
    const parent = valueAt(copy, path.slice(0, -1));
    const key = path[path.length - 1];
    if (typeof parent === 'object' && parent !== null && key !== undefined && (parent as Record<string | number, unknown>)[key] !== undefined) {
      (parent as Record<string | number, unknown>)[key] = REDACTED;
    }
  }
  return copy;
}

/** The value at `path` (segments) in plain data; undefined when any step is missing. */
export function valueAt(root: unknown, path: ReadonlyArray<string | number>): unknown {
  let node = root;
  for (const seg of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    if (Array.isArray(node)) {
      if (typeof seg !== 'number') return undefined;
      node = node[seg];
    } else {
      if (!Object.hasOwn(node, seg)) return undefined;
      node = (node as Record<string | number, unknown>)[seg];
    }
  }
  return node;
}

/**
 * `proxy.timeouts.idleMs` → ['proxy', 'timeouts', 'idleMs']; `allow.rules.0.hosts` → [..., 0, ...]
 * (a segment of digits is a list index). Empty segments are refused.
 */
export function parseDottedPath(dotted: string): Array<string | number> | null {
  if (dotted === '') return null;
  const segs = dotted.split('.');
  if (segs.some((s) => s === '')) return null;
  return segs.map((s) => (/^(0|[1-9]\d{0,5})$/.test(s) ? Number(s) : s));
}

export interface ConfigChange {
  /** `allow.rules`, `proxy.timeouts.idleMs`. */
  path: string;
  before?: unknown;
  after?: unknown;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The keys whose values differ between two configurations, mappings compared key by key and lists
 * as a whole (a list is one setting: `allow.rules` changed, with both versions). Secrets are
 * compared but shown redacted.
 */
export function diffConfigs(before: PortcullisConfig, after: PortcullisConfig): ConfigChange[] {
  const a = redactedConfig(before);
  const b = redactedConfig(after);
  const out: ConfigChange[] = [];
  const walk = (x: unknown, y: unknown, path: string[], rawX: unknown, rawY: unknown): void => {
    if (isPlainObject(x) && isPlainObject(y)) {
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])];
      for (const k of keys) walk(x[k], y[k], [...path, k], isPlainObject(rawX) ? rawX[k] : undefined, isPlainObject(rawY) ? rawY[k] : undefined);
      return;
    }
    // Compare the unredacted values, so a changed secret still shows as a change.
    if (JSON.stringify(rawX) === JSON.stringify(rawY)) return;
    out.push({ path: formatPath(path), ...(x !== undefined ? { before: x } : {}), ...(y !== undefined ? { after: y } : {}) });
  };
  walk(a, b, [], before, after);
  return out;
}

/**
 * Host patterns in allow rules: exact names, `*.suffix` wildcards, `{workspaceId}`/`{region}`
 * templates, IP literals and CIDRs. Parsing is shared by the config check and the compiler so
 * both agree on what is valid.
 */
import { getPublicSuffix } from 'tldts';
import { classifyHost } from './host.js';
import { parseCidr, type Cidr } from './cidr.js';

export type Placeholder = 'workspaceId' | 'region';

export type HostPattern =
  | { readonly kind: 'exact'; readonly host: string }
  | { readonly kind: 'wildcard'; readonly suffix: string }
  | { readonly kind: 'ip'; readonly cidr: Cidr }
  | {
      readonly kind: 'template';
      readonly placeholder: Placeholder;
      /** `*.{region}.x` (true) vs `{region}.x` (false). */
      readonly leadingWildcard: boolean;
      /** Normalised labels right of the placeholder. */
      readonly rest: string;
    };

export type PatternResult = { ok: true; pattern: HostPattern } | { ok: false; message: string };

const PLACEHOLDERS: Readonly<Record<string, Placeholder>> = {
  '{workspaceId}': 'workspaceId',
  '{region}': 'region',
};

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REGION = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lower-cased GUID, or null. */
export function normaliseWorkspaceId(raw: string): string | null {
  if (typeof raw !== 'string') return null;
  const s = raw.trim().toLowerCase();
  return GUID.test(s) ? s : null;
}

/** Lower-cased Azure region name (one DNS label, e.g. westeurope, usgovvirginia), or null. */
export function normaliseRegion(raw: string): string | null {
  if (typeof raw !== 'string') return null;
  const s = raw.trim().toLowerCase();
  return REGION.test(s) ? s : null;
}

/**
 * Is `*.suffix` acceptable? The suffix must be a name of at least two labels and must not be a
 * public suffix in the ICANN section of the Public Suffix List (`*.com`, `*.co.uk`), nor have
 * public suffixes directly below it (PSL wildcard rules like `*.ck`).
 * Private-section entries (blob.core.windows.net, github.io…) are accepted: they are one
 * operator's namespace, and legacy agents need `*.blob.core.windows.net`. describePolicy flags
 * them, since such a wildcard matches every tenant of that operator.
 * Single-label suffixes (`*.internal`, `*.lan`) are refused: they cover a whole TLD.
 */
export function checkWildcardSuffix(rawSuffix: string): { ok: true; suffix: string } | { ok: false; message: string } {
  const c = classifyHost(rawSuffix);
  if (c === null || c.kind !== 'name') {
    return { ok: false, message: `"*.${rawSuffix}": "${rawSuffix}" is not a valid host name` };
  }
  const suffix = c.host;
  if (!suffix.includes('.')) {
    return { ok: false, message: `"*.${suffix}" would match a whole top-level domain` };
  }
  const opts = { allowPrivateDomains: false, extractHostname: false, validateHostname: false } as const;
  const own = getPublicSuffix(suffix, opts);
  const child = getPublicSuffix(`x.${suffix}`, opts);
  if (own === suffix || child === `x.${suffix}`) {
    return {
      ok: false,
      message: `"*.${suffix}" is a wildcard over a public suffix (Public Suffix List): it would match unrelated registrants`,
    };
  }
  return { ok: true, suffix };
}

/** True when `suffix` is a PSL private-section entry (e.g. blob.core.windows.net). */
export function isSharedSuffix(suffix: string): boolean {
  const ps = getPublicSuffix(`x.${suffix}`, {
    allowPrivateDomains: true,
    extractHostname: false,
    validateHostname: false,
  });
  return ps === suffix || (ps !== null && ps.endsWith(`.${suffix}`));
}

export function parsePattern(raw: string): PatternResult {
  if (typeof raw !== 'string' || raw.length === 0) return { ok: false, message: 'empty host pattern' };
  if (raw.length > 1024) return { ok: false, message: 'host pattern is too long' };
  const bad = (why: string): PatternResult => ({ ok: false, message: `"${raw}": ${why}` });

  // IP literals and CIDRs: anything with '/' or ':' or that is all digits and dots.
  if (raw.includes('/') || raw.includes(':') || raw.startsWith('[') || /^[0-9.]+$/.test(raw)) {
    const cidr = parseCidr(raw);
    if (cidr === null) {
      return bad(
        raw.includes(':') && !raw.startsWith('[') && /^[^:]+:\d+$/.test(raw)
          ? "not a host name (ports go in the rule's ports list)"
          : 'not a valid IP address or CIDR (IPv4 must be dotted-quad: a.b.c.d or a.b.c.d/n)',
      );
    }
    return { ok: true, pattern: { kind: 'ip', cidr } };
  }

  if (raw.includes('{') || raw.includes('}')) {
    const labels = raw.split('.');
    let at = -1;
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i] ?? '';
      if (!l.includes('{') && !l.includes('}')) continue;
      if (!(l in PLACEHOLDERS)) {
        return bad(`unknown placeholder "${l}" (known: {workspaceId}, {region}; each must be a whole label)`);
      }
      if (at >= 0) return bad('only one placeholder per pattern');
      at = i;
    }
    const leadingWildcard = at === 1 && labels[0] === '*';
    if (at !== 0 && !leadingWildcard) {
      return bad('a placeholder must be the first label, or follow a leading "*."');
    }
    const placeholder = PLACEHOLDERS[labels[at] ?? ''];
    const restRaw = labels.slice(at + 1).join('.');
    if (placeholder === undefined || restRaw.length === 0) return bad('a placeholder needs a domain after it');
    if (restRaw.includes('*')) return bad('"*" is only allowed as the whole first label');
    // Without configured values the placeholder widens to "*.rest": that must be safe too.
    const w = checkWildcardSuffix(restRaw);
    if (!w.ok) return bad(`with no values configured it becomes ${w.message}`);
    return { ok: true, pattern: { kind: 'template', placeholder, leadingWildcard, rest: w.suffix } };
  }

  if (raw.includes('*')) {
    if (!raw.startsWith('*.') || raw.indexOf('*', 1) >= 0) {
      return bad('"*" is only allowed as the whole first label, as in "*.example.com"');
    }
    const w = checkWildcardSuffix(raw.slice(2));
    if (!w.ok) return { ok: false, message: w.message };
    return { ok: true, pattern: { kind: 'wildcard', suffix: w.suffix } };
  }

  const c = classifyHost(raw);
  if (c === null) return bad('not a valid host name');
  if (c.kind !== 'name') {
    // e.g. "::ffff:…" spelled oddly; IP forms are handled above, so this is unreachable in practice.
    return bad('IP addresses must be written as a.b.c.d, an IPv6 literal or a CIDR');
  }
  return { ok: true, pattern: { kind: 'exact', host: c.host } };
}

/** What a pattern means once placeholders are filled in. */
export type ExpandedPattern =
  { readonly kind: 'exact'; readonly host: string } | { readonly kind: 'wildcard'; readonly suffix: string } | { readonly kind: 'ip'; readonly cidr: Cidr };

export function expandPattern(p: HostPattern, values: { readonly workspaceId: readonly string[]; readonly region: readonly string[] }): ExpandedPattern[] {
  if (p.kind !== 'template') return [p];
  const vs = values[p.placeholder];
  // No values: the placeholder and anything left of it become one wildcard ("*.rest").
  // For "*.{region}.x" this also admits "a.x" — a little wider, documented.
  if (vs.length === 0) return [{ kind: 'wildcard', suffix: p.rest }];
  return vs.map((v) => (p.leadingWildcard ? ({ kind: 'wildcard', suffix: `${v}.${p.rest}` } as const) : ({ kind: 'exact', host: `${v}.${p.rest}` } as const)));
}

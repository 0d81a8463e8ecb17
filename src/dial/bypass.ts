/**
 * upstreamProxy.bypass: destinations dialled directly instead of through a relay proxy. Entries are
 * parsed by the allowlist's own parser (src/address/patterns.ts), so what check-config accepts is
 * what matches here. Matching is on the destination as the client named it: a name matches an exact
 * entry or a `*.suffix` (a name below the suffix, not the suffix itself, as in allow rules); an IP
 * literal matches an IP or CIDR entry. Names are never resolved to match a CIDR.
 */
import { cidrMatchesV4, cidrMatchesV6, parseAddress, type Cidr } from '../address/cidr.js';
import type { Target } from '../address/host.js';
import { parsePattern } from '../address/patterns.js';

export class BypassList {
  readonly #exact = new Set<string>();
  readonly #suffixes: string[] = [];
  readonly #cidrs: Cidr[] = [];

  /** Entries the config check refused (templates, bad patterns) are skipped: the loader never passes them. */
  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const parsed = parsePattern(raw);
      if (!parsed.ok) continue;
      const p = parsed.pattern;
      if (p.kind === 'exact') this.#exact.add(p.host);
      else if (p.kind === 'wildcard') this.#suffixes.push(p.suffix);
      else if (p.kind === 'ip') this.#cidrs.push(p.cidr);
    }
  }

  get empty(): boolean {
    return this.#exact.size === 0 && this.#suffixes.length === 0 && this.#cidrs.length === 0;
  }

  matches(target: Target): boolean {
    if (target.kind === 'name') {
      if (this.#exact.has(target.host)) return true;
      return this.#suffixes.some((s) => target.host.length > s.length + 1 && target.host.endsWith(s) && target.host[target.host.length - s.length - 1] === '.');
    }
    const a = parseAddress(target.host);
    if (a === null) return false;
    return this.#cidrs.some((c) => (a.family === 4 ? cidrMatchesV4(c, a.n) : cidrMatchesV6(c, a.addr)));
  }
}

import dns from 'node:dns';
import { isIP } from 'node:net';
import { errorCode, PortcullisError } from '../util/errors.js';
import { classifyAddress } from './classify.js';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
  readonly isPublic: boolean;
  readonly range: string;
}

export interface ResolverOptions {
  /** host → IP, exact (normalised) host names; like /etc/hosts. */
  overrides: Readonly<Record<string, string>>;
  /** Bound on one getaddrinfo call. */
  timeoutMs: number;
  /** Positive answers are cached this long; 0 = no cache. */
  cacheTtlMs: number;
  /** Oldest entries are evicted beyond this. Default 10,000. */
  maxCacheEntries?: number;
}

interface CacheEntry {
  readonly expires: number;
  readonly value: readonly ResolvedAddress[];
}

const DEFAULT_MAX_CACHE = 10_000;
const LOOKUP_OPTS = { all: true, order: 'verbatim' } as const;

export function toResolved(ip: string): ResolvedAddress {
  const c = classifyAddress(ip);
  return { address: ip, family: isIP(ip) === 6 ? 6 : 4, isPublic: c.isPublic, range: c.range };
}

function buildOverrides(overrides: Readonly<Record<string, string>>): Map<string, readonly ResolvedAddress[]> {
  const map = new Map<string, readonly ResolvedAddress[]>();
  for (const [host, value] of Object.entries(overrides)) {
    const ip = value.trim();
    if (isIP(ip) === 0) {
      throw new PortcullisError('PCL_ERR_DNS_OVERRIDE', `dns.overrides["${host}"]: "${ip}" is not an IP address`);
    }
    map.set(host, Object.freeze([Object.freeze(toResolved(ip))]));
  }
  return map;
}

/**
 * Resolves destination names for the dialer. Answers are shared and frozen: callers must not
 * mutate the returned arrays (copy before filtering in place).
 */
export class Resolver {
  #overrides: Map<string, readonly ResolvedAddress[]>;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<readonly ResolvedAddress[]>>();
  #timeoutMs: number;
  #ttlMs: number;
  readonly #maxEntries: number;
  // Bumped when the cache is cleared: a lookup started before that must not refill it.
  #generation = 0;

  constructor(opts: ResolverOptions) {
    this.#overrides = buildOverrides(opts.overrides);
    this.#timeoutMs = opts.timeoutMs;
    this.#ttlMs = opts.cacheTtlMs;
    this.#maxEntries = Math.max(1, opts.maxCacheEntries ?? DEFAULT_MAX_CACHE);
  }

  resolve(host: string): Promise<readonly ResolvedAddress[]> {
    const override = this.#overrides.get(host);
    if (override !== undefined) return Promise.resolve(override);
    if (isIP(host) !== 0) return Promise.resolve([toResolved(host)]);

    if (this.#ttlMs > 0) {
      const hit = this.#cache.get(host);
      if (hit !== undefined) {
        if (hit.expires > Date.now()) return Promise.resolve(hit.value);
        this.#cache.delete(host);
      }
    }
    const pending = this.#inflight.get(host);
    if (pending !== undefined) return pending;

    const p = this.#lookup(host);
    this.#inflight.set(host, p);
    return p;
  }

  /**
   * Apply a reloaded config's overrides and timeouts, keeping the cached answers: they are still
   * DNS's answers (an override is consulted before the cache, so a new one wins at once). Only a
   * changed TTL drops them, since they were stored for the old one. Returns this resolver.
   */
  reconfigure(opts: Pick<ResolverOptions, 'overrides' | 'timeoutMs' | 'cacheTtlMs'>): this {
    this.#overrides = buildOverrides(opts.overrides);
    this.#timeoutMs = opts.timeoutMs;
    if (opts.cacheTtlMs !== this.#ttlMs) {
      this.#ttlMs = opts.cacheTtlMs;
      this.#cache.clear();
      this.#generation++;
    }
    return this;
  }

  /** Entries currently cached (for metrics and tests). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  async #lookup(host: string): Promise<readonly ResolvedAddress[]> {
    const generation = this.#generation;
    try {
      const answers = await lookupWithTimeout(host, this.#timeoutMs);
      const value = toAddresses(host, answers);
      if (this.#ttlMs > 0 && generation === this.#generation) this.#store(host, value);
      return value;
    } finally {
      this.#inflight.delete(host);
    }
  }

  #store(host: string, value: readonly ResolvedAddress[]): void {
    const cache = this.#cache;
    cache.delete(host); // re-insert at the young end
    while (cache.size >= this.#maxEntries) {
      // Map iterates in insertion order: the first key is the oldest.
      const oldest = cache.keys().next();
      if (oldest.done === true) break;
      cache.delete(oldest.value);
    }
    cache.set(host, { expires: Date.now() + this.#ttlMs, value });
  }
}

function toAddresses(host: string, answers: dns.LookupAddress[]): readonly ResolvedAddress[] {
  const out: ResolvedAddress[] = [];
  for (const a of answers) {
    let dup = false;
    for (const o of out) if (o.address === a.address) dup = true;
    if (!dup) out.push(Object.freeze(toResolved(a.address)));
  }
  if (out.length === 0) throw new PortcullisError('PCL_ERR_DNS_NOTFOUND', `${host}: no addresses`);
  return Object.freeze(out);
}

/**
 * getaddrinfo cannot be cancelled: on timeout the libuv thread-pool call runs on and its answer is
 * dropped. The timeout only frees the caller.
 */
function lookupWithTimeout(host: string, timeoutMs: number): Promise<dns.LookupAddress[]> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new PortcullisError('PCL_ERR_DNS_TIMEOUT', `${host}: DNS lookup timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      dns.lookup(host, LOOKUP_OPTS, (err, addresses) => {
        if (done) return;
        clearTimeout(timer);
        if (err) reject(mapDnsError(host, err));
        else resolve(addresses);
      });
    } catch (err) {
      // Synchronous argument errors (e.g. a name with a NUL byte).
      clearTimeout(timer);
      reject(new PortcullisError('PCL_ERR_DNS', `${host}: DNS lookup failed (${errorCode(err) ?? 'EINVAL'})`, { cause: err }));
    }
  });
}

function mapDnsError(host: string, err: NodeJS.ErrnoException): PortcullisError {
  const code = err.code ?? 'UNKNOWN';
  if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'EAI_NONAME' || code === 'EAI_NODATA') {
    return new PortcullisError('PCL_ERR_DNS_NOTFOUND', `${host}: not found (${code})`, { cause: err });
  }
  return new PortcullisError('PCL_ERR_DNS', `${host}: DNS lookup failed (${code})`, { cause: err });
}

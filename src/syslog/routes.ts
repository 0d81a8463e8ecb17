/** syslog.routes -> what the listeners (listener, source address) and the pool threads (the rest) match on. */
import type { SyslogConfig } from '../config/types.js';
import { SYSLOG_FACILITIES, SYSLOG_SEVERITIES } from '../config/syslog-checks.js';
import { cidrMatchesV4, cidrMatchesV6, parseAddress, parseCidr, type Cidr } from '../address/cidr.js';
import type { RouteSpec, Table } from './parse/task.js';

export interface CompiledRoute {
  name: string;
  destination: string;
  stream: string;
  listeners: ReadonlySet<string> | null;
  cidrs: Cidr[] | null;
  spec: RouteSpec;
}

const CANDIDATE_CACHE_MAX = 4096;

export class SyslogRoutes {
  readonly routes: CompiledRoute[];
  readonly specs: RouteSpec[];
  readonly #cache = new Map<string, number[]>();

  constructor(cfg: SyslogConfig) {
    this.routes = cfg.routes.map((r) => {
      const table: Table = r.table ?? (/commonsecuritylog/i.test(r.stream) ? 'CommonSecurityLog' : 'Syslog');
      const facility = (name: string): number => SYSLOG_FACILITIES.indexOf(name as (typeof SYSLOG_FACILITIES)[number]);
      return {
        name: r.name,
        destination: r.to,
        stream: r.stream,
        listeners: r.match.listener ? new Set(r.match.listener) : null,
        cidrs: r.match.cidrs ? r.match.cidrs.map(parseCidr).filter((c): c is Cidr => c !== null) : null,
        spec: {
          table,
          facilities: r.match.facility ? r.match.facility.map(facility).filter((n) => n >= 0) : null,
          cefVendor: r.match.cefVendor?.toLowerCase() ?? null,
          cefProduct: r.match.cefProduct?.toLowerCase() ?? null,
          dropFacilities: r.filter.dropFacilities.map(facility).filter((n) => n >= 0),
          maxSeverity: SYSLOG_SEVERITIES.indexOf(r.filter.minSeverity),
        },
      };
    });
    this.specs = this.routes.map((r) => r.spec);
  }

  /** Route indices a message from `ip` on `listener` may take, in order (cached per pair, bounded). */
  candidates(listener: string, ip: string): number[] {
    const key = `${listener} ${ip}`;
    const hit = this.#cache.get(key);
    if (hit) return hit;
    const addr = parseAddress(ip);
    const out: number[] = [];
    this.routes.forEach((r, i) => {
      if (r.listeners && !r.listeners.has(listener)) return;
      if (r.cidrs) {
        if (!addr) return;
        const ok = r.cidrs.some((c) => (addr.family === 4 ? cidrMatchesV4(c, addr.n) : cidrMatchesV6(c, addr.addr)));
        if (!ok) return;
      }
      out.push(i);
    });
    if (this.#cache.size >= CANDIDATE_CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, out);
    return out;
  }
}

/** "::ffff:10.1.2.3" -> "10.1.2.3": HostIP as operators write it. */
export function plainIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

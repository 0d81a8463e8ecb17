/**
 * IP literals and CIDR blocks, for the client ACL and for IP entries in allow rules.
 * IPv4 is matched as 32-bit integers (the common case, no allocation); IPv6 through ipaddr.js.
 */
import ipaddr from 'ipaddr.js';
import { classifyIpv6, ipv4ToInt, isDottedQuad } from './host.js';

export type Cidr =
  | { readonly family: 4; readonly net: number; readonly mask: number; readonly prefix: number; readonly text: string }
  | { readonly family: 6; readonly addr: ipaddr.IPv6; readonly prefix: number; readonly text: string };

function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function v4Cidr(addr: string, prefix: number): Cidr {
  const mask = v4Mask(prefix);
  const net = (ipv4ToInt(addr) & mask) >>> 0;
  return { family: 4, net, mask, prefix, text: prefix === 32 ? addr : `${intToIpv4(net)}/${prefix}` };
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * "a.b.c.d", "a.b.c.d/n", "v6", "[v6]", "v6/n", "[v6]/n". A bare address is /32 or /128.
 * IPv4-mapped IPv6 blocks (::ffff:0:0/96 and narrower) become the IPv4 block they denote,
 * because mapped addresses are matched as IPv4. Host bits beyond the prefix are ignored.
 * null if it is not an address or block.
 */
export function parseCidr(raw: string): Cidr | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 64) return null;
  let addr = raw;
  let prefix: number | undefined;
  const slash = raw.indexOf('/');
  if (slash >= 0) {
    addr = raw.slice(0, slash);
    const p = raw.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    prefix = Number(p);
  }
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  if (isDottedQuad(addr)) {
    if (prefix !== undefined && prefix > 32) return null;
    return v4Cidr(addr, prefix ?? 32);
  }
  if (!addr.includes(':')) return null;
  const c = classifyIpv6(addr);
  if (c === null) return null;
  if (prefix !== undefined && prefix > 128) return null;
  if (c.kind === 'ipv4') {
    const p = prefix ?? 128;
    if (p < 96) return null; // would cover more than the mapped range: ambiguous, refuse
    return v4Cidr(c.host, p - 96);
  }
  const p = prefix ?? 128;
  const parsed = ipaddr.IPv6.parse(c.host);
  const net = ipaddr.IPv6.networkAddressFromCIDR(`${c.host}/${p}`);
  return { family: 6, addr: parsed, prefix: p, text: p === 128 ? c.host : `${net.toString()}/${p}` };
}

/**
 * Parses a client address as a socket reports it ("10.1.2.3", "::ffff:10.1.2.3", "fe80::1%eth0")
 * into the form the matchers take. null if unparseable.
 */
export function parseAddress(ip: string): { family: 4; n: number } | { family: 6; addr: ipaddr.IPv6 } | null {
  if (typeof ip !== 'string' || ip.length === 0 || ip.length > 64) return null;
  const pct = ip.indexOf('%');
  const s = pct >= 0 ? ip.slice(0, pct) : ip; // zone id: irrelevant to which range it is in
  if (!s.includes(':')) {
    const n = ipv4ToInt(s);
    return Number.isNaN(n) ? null : { family: 4, n };
  }
  const c = classifyIpv6(s);
  if (c === null) return null;
  if (c.kind === 'ipv4') return { family: 4, n: ipv4ToInt(c.host) };
  return { family: 6, addr: ipaddr.IPv6.parse(c.host) };
}

export function cidrMatchesV4(c: Cidr, n: number): boolean {
  return c.family === 4 && (n & c.mask) >>> 0 === c.net;
}

export function cidrMatchesV6(c: Cidr, addr: ipaddr.IPv6): boolean {
  return c.family === 6 && addr.match(c.addr, c.prefix);
}

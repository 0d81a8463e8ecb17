import ipaddr from 'ipaddr.js';
import { classifyHost } from '../address/host.js';
import { parseCidr } from '../address/cidr.js';
import { parsePattern } from '../address/patterns.js';
import { parseListenAddress, type ListenAddress } from './listen.js';
import type { RawIssue } from './schema.js';
import { errorMessage } from '../util/errors.js';
import { syslogChecks } from './syslog-checks.js';

/**
 * Checks the schema cannot express; the only place they are written (the policy compiler relies on
 * them through the loader). They run on the data even when the schema found errors (so one pass
 * reports everything), hence every access here is defensive. Host names, CIDRs and host patterns
 * are judged by the same parsers (src/address) the policy compiles them with, so what passes here
 * compiles.
 */
export function builtinChecks(data: unknown): RawIssue[] {
  const issues: RawIssue[] = [];
  const root = asRecord(data);
  const proxy = asRecord(root?.proxy);
  const admin = asRecord(root?.admin);

  const listeners: Array<{ addr: ListenAddress; index: number; text: string }> = [];
  if (Array.isArray(proxy?.listen)) {
    (proxy.listen as unknown[]).forEach((s, index) => {
      if (typeof s !== 'string') return;
      const addr = tryListen(s, ['proxy', 'listen', index], issues);
      if (!addr) return;
      const clash = listeners.find((l) => overlaps(l.addr, addr));
      if (clash) {
        const same = sameAddress(clash.addr, addr);
        issues.push({
          path: ['proxy', 'listen', index],
          message: same ? `same address as proxy.listen[${clash.index}]` : `overlaps proxy.listen[${clash.index}] (${clash.text}): both cannot be bound`,
        });
      }
      listeners.push({ addr, index, text: s });
    });
  }
  if (typeof admin?.listen === 'string') {
    const addr = tryListen(admin.listen, ['admin', 'listen'], issues);
    const clash = addr && listeners.find((l) => overlaps(l.addr, addr));
    if (clash) issues.push({ path: ['admin', 'listen'], message: `overlaps proxy.listen[${clash.index}]: both cannot be bound` });
  }

  const clients = asRecord(root?.clients);
  for (const key of ['allow', 'deny'] as const) {
    const list = clients?.[key];
    if (!Array.isArray(list)) continue;
    list.forEach((s: unknown, i) => {
      if (typeof s !== 'string' || s === '') return;
      const why = checkIpOrCidr(s);
      if (why) issues.push({ path: ['clients', key, i], message: why });
    });
  }

  const overrides = asRecord(asRecord(root?.dns)?.overrides);
  if (overrides) {
    const seen = new Map<string, string>();
    for (const [host, ip] of Object.entries(overrides)) {
      const norm = overrideHost(host);
      if (!norm.ok) issues.push({ path: ['dns', 'overrides', host], at: 'key', message: norm.message });
      else {
        const prev = seen.get(norm.host);
        if (prev !== undefined) issues.push({ path: ['dns', 'overrides', host], at: 'key', message: `same host as "${prev}"` });
        else seen.set(norm.host, host);
      }
      if (typeof ip === 'string' && ip !== '' && !isIp(ip)) {
        issues.push({ path: ['dns', 'overrides', host], message: `${JSON.stringify(ip)} is not an IPv4 or IPv6 address` });
      }
    }
  }

  const allow = asRecord(root?.allow);
  if (Array.isArray(allow?.rules)) {
    const names = new Map<string, number>();
    allow.rules.forEach((r: unknown, i) => {
      const rule = asRecord(r);
      const hosts = rule?.hosts;
      if (Array.isArray(hosts)) {
        hosts.forEach((h: unknown, j) => {
          if (typeof h !== 'string' || h === '') return; // the schema reports these
          const parsed = parsePattern(h);
          if (!parsed.ok) issues.push({ path: ['allow', 'rules', i, 'hosts', j], message: parsed.message });
        });
      }
      const name = rule?.name;
      if (typeof name !== 'string') return;
      // Case-insensitive: "CRL" and "crl" as two metrics labels would only confuse.
      const prev = names.get(name.toLowerCase());
      if (prev !== undefined) issues.push({ path: ['allow', 'rules', i, 'name'], message: `duplicate rule name "${name}" (also allow.rules[${prev}])` });
      else names.set(name.toLowerCase(), i);
    });
  }
  if (Array.isArray(allow?.workspaces)) {
    const ids = new Map<string, number>();
    allow.workspaces.forEach((w: unknown, i) => {
      const id = asRecord(w)?.id;
      if (typeof id !== 'string') return;
      const prev = ids.get(id.toLowerCase());
      if (prev !== undefined) issues.push({ path: ['allow', 'workspaces', i, 'id'], message: `duplicate workspace (also allow.workspaces[${prev}])` });
      else ids.set(id.toLowerCase(), i);
    });
  }
  issues.push(...syslogChecks(root));
  return issues;
}

function asRecord(x: unknown): Record<string, unknown> | undefined {
  return x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;
}

function tryListen(s: string, path: Array<string | number>, issues: RawIssue[]): ListenAddress | undefined {
  try {
    return parseListenAddress(s);
  } catch (err) {
    issues.push({ path, message: errorMessage(err).replace(/^invalid listen address /, 'invalid address ') });
    return undefined;
  }
}

type Family = 'ipv4' | 'ipv6' | 'name';
function family(host: string): Family {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return 'ipv4';
  if (ipaddr.IPv6.isValid(host)) return 'ipv6';
  return 'name';
}

function canonicalHost(host: string): string {
  const f = family(host);
  return f === 'name' ? host.toLowerCase() : ipaddr.parse(host).toString();
}

function sameAddress(a: ListenAddress, b: ListenAddress): boolean {
  return a.port === b.port && a.port !== 0 && canonicalHost(a.host) === canonicalHost(b.host);
}

/**
 * Two listeners that cannot both be bound: same address, or a wildcard that covers the other.
 * Node's `::` listener is dual-stack, so it covers IPv4 addresses too.
 */
export function overlaps(a: ListenAddress, b: ListenAddress): boolean {
  // Two port-0 listeners get different free ports from the kernel.
  if (a.port !== b.port || a.port === 0) return false;
  if (sameAddress(a, b)) return true;
  const ha = canonicalHost(a.host);
  const hb = canonicalHost(b.host);
  if (ha === '::' || hb === '::') return true;
  if (ha === '0.0.0.0') return family(b.host) === 'ipv4';
  if (hb === '0.0.0.0') return family(a.host) === 'ipv4';
  return false;
}

/** A plain IP address (no zone, no shorthand IPv4 forms like "10.1"). */
export function isIp(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s) || (ipaddr.IPv6.isValid(s) && !s.includes('%'));
}

/**
 * undefined when `s` is an IP address or CIDR as the client ACL reads it (src/address/cidr.ts);
 * otherwise what is wrong with it.
 */
export function checkIpOrCidr(s: string): string | undefined {
  if (parseCidr(s) !== null) return undefined;
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const max = ipaddr.IPv4.isValidFourPartDecimal(addr) ? 32 : isIp(addr.replace(/^\[(.*)\]$/, '$1')) ? 128 : undefined;
  if (max !== undefined && slash >= 0 && s.indexOf('/', slash + 1) < 0) {
    return addr.toLowerCase().startsWith('::ffff:') || addr.toLowerCase().startsWith('[::ffff:')
      ? `${JSON.stringify(s)}: an IPv4-mapped block needs a prefix length of 96 to 128`
      : `${JSON.stringify(s)}: prefix length must be 0 to ${max}`;
  }
  return `${JSON.stringify(s)} is not an IP address or CIDR (like 10.0.0.0/8 or fd00::/8)`;
}

/**
 * A dns.overrides key → the host name targets are compared with (normaliseHost: lower case, no
 * root dot, IDN as punycode), or why it can never match a target.
 */
export function overrideHost(raw: string): { ok: true; host: string } | { ok: false; message: string } {
  if (raw.includes('*')) return { ok: false, message: 'wildcards are not supported here; list each host name' };
  const c = classifyHost(raw);
  if (c !== null && c.kind !== 'name') return { ok: false, message: 'must be a host name, not an IP address' };
  if (c === null) {
    const bare = (raw.endsWith('.') ? raw.slice(0, -1) : raw).replace(/^\[(.*)\]$/, '$1');
    if (isIp(bare)) return { ok: false, message: 'must be a host name, not an IP address' };
    return { ok: false, message: `${JSON.stringify(raw)} is not a valid host name` };
  }
  return { ok: true, host: c.host };
}

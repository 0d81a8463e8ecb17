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
  const tls = asRecord(proxy?.tls);
  if (Array.isArray(tls?.listen)) {
    (tls.listen as unknown[]).forEach((s, index) => {
      if (typeof s !== 'string') return;
      const addr = tryListen(s, ['proxy', 'tls', 'listen', index], issues);
      if (!addr) return;
      const clash = listeners.find((l) => overlaps(l.addr, addr));
      if (clash) issues.push({ path: ['proxy', 'tls', 'listen', index], message: `overlaps ${clash.text} (another proxy listener): both cannot be bound` });
      listeners.push({ addr, index, text: s });
    });
  }
  if (tls?.requireClientCert === true && typeof tls.clientCaFile !== 'string') {
    issues.push({ path: ['proxy', 'tls', 'requireClientCert'], message: 'needs proxy.tls.clientCaFile (the CA client certificates must chain to)' });
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

  const certs = asRecord(clients?.certificates);
  const listsCerts = [certs?.subjects, certs?.thumbprintsSha256].some((l) => Array.isArray(l) && l.length > 0);
  if (tls && listsCerts && typeof tls.clientCaFile !== 'string') {
    issues.push({ path: ['proxy', 'tls'], message: 'clients.certificates lists certificates: the TLS listener needs clientCaFile to ask clients for theirs' });
  }

  // clients.certificates.subjects: attribute=value pairs (src/tls/subject.ts compares them); a bare
  // name would never match any certificate, which is a mistake worth saying at load.
  const subjects = asRecord(clients?.certificates)?.subjects;
  if (Array.isArray(subjects)) {
    subjects.forEach((s: unknown, i) => {
      if (typeof s === 'string' && !/^\s*\/?\s*[A-Za-z][A-Za-z0-9.]*\s*=/.test(s)) {
        issues.push({
          path: ['clients', 'certificates', 'subjects', i],
          message: 'must be attribute=value pairs, like "CN=<workspaceId>, CN=<agentGuid>, OU=..., O=..."',
        });
      }
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
  issues.push(...upstreamProxyChecks(asRecord(root?.upstreamProxy)));
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
  issues.push(...groupChecks(clients?.groups, allow));
  issues.push(...syslogChecks(root));
  return issues;
}

/** clients.groups: unique names, valid CIDRs, and rules that name an allow.rules entry or a preset in use. */
function groupChecks(groups: unknown, allow: Record<string, unknown> | undefined): RawIssue[] {
  if (!Array.isArray(groups)) return [];
  const issues: RawIssue[] = [];
  const ruleNames = new Set<string>();
  if (Array.isArray(allow?.rules))
    for (const r of allow.rules as unknown[]) if (typeof asRecord(r)?.name === 'string') ruleNames.add(String(asRecord(r)?.name));
  // Presets default to azure-public when allow.presets is absent (schema default).
  const presets = new Set<string>(
    Array.isArray(allow?.presets) ? (allow.presets as unknown[]).filter((p): p is string => typeof p === 'string') : ['azure-public'],
  );
  const names = new Map<string, number>();
  groups.forEach((g: unknown, i) => {
    const group = asRecord(g);
    const name = group?.name;
    if (typeof name === 'string') {
      const prev = names.get(name.toLowerCase());
      if (prev !== undefined) issues.push({ path: ['clients', 'groups', i, 'name'], message: `duplicate group name "${name}" (also clients.groups[${prev}])` });
      else names.set(name.toLowerCase(), i);
    }
    if (Array.isArray(group?.cidrs)) {
      (group.cidrs as unknown[]).forEach((c, j) => {
        if (typeof c !== 'string' || c === '') return;
        const why = checkIpOrCidr(c);
        if (why) issues.push({ path: ['clients', 'groups', i, 'cidrs', j], message: why });
      });
    }
    if (Array.isArray(group?.rules)) {
      (group.rules as unknown[]).forEach((r, j) => {
        if (typeof r !== 'string' || r === '' || ruleNames.has(r) || presets.has(r)) return;
        issues.push({ path: ['clients', 'groups', i, 'rules', j], message: `"${r}" is neither an allow.rules name nor a preset in allow.presets` });
      });
    }
  });
  return issues;
}

/**
 * upstreamProxy: each relay's url is http://host:port (a port, nothing else: no path, no
 * credentials), no relay twice, a username comes with one password spelling (and a password with a
 * username), and bypass entries are host names, `*.suffix` wildcards, IP literals or CIDRs as the
 * dialer matches them (src/address, the same parsers as allow rules).
 */
function upstreamProxyChecks(up: Record<string, unknown> | undefined): RawIssue[] {
  const issues: RawIssue[] = [];
  if (!up) return issues;
  const seen = new Map<string, number>();
  if (Array.isArray(up.proxies)) {
    up.proxies.forEach((p: unknown, i) => {
      const entry = asRecord(p);
      if (!entry) return;
      const path = ['upstreamProxy', 'proxies', i];
      if (typeof entry.url === 'string') {
        const parsed = parseRelayUrl(entry.url);
        if (!parsed.ok) issues.push({ path: [...path, 'url'], message: parsed.message });
        else {
          const prev = seen.get(parsed.hostPort);
          if (prev !== undefined) issues.push({ path: [...path, 'url'], message: `same relay as upstreamProxy.proxies[${prev}]` });
          else seen.set(parsed.hostPort, i);
        }
      }
      const hasPassword = entry.password !== undefined || entry.passwordFile !== undefined || entry.passwordEnv !== undefined;
      if (entry.username !== undefined && !hasPassword) {
        issues.push({ path: [...path, 'username'], message: 'a username needs a password: give password, passwordFile or passwordEnv' });
      } else if (entry.username === undefined && hasPassword) {
        issues.push({ path, message: 'a password needs a username (Basic authentication sends both)' });
      }
    });
  }
  if (Array.isArray(up.bypass)) {
    up.bypass.forEach((b: unknown, i) => {
      if (typeof b !== 'string' || b === '') return; // the schema reports these
      const why = bypassProblem(b);
      if (why) issues.push({ path: ['upstreamProxy', 'bypass', i], message: why });
    });
  }
  return issues;
}

/**
 * A relay url (`http://host:port`), parsed, or why it is not one. The authority is read as written
 * (not through WHATWG URL, which would turn `1.2.3` into `1.2.0.3`): the host must be what
 * src/address accepts as a name or IP literal.
 */
export function parseRelayUrl(raw: string): { ok: true; host: string; port: number; hostPort: string } | { ok: false; message: string } {
  if (!raw.toLowerCase().startsWith('http://')) return { ok: false, message: 'must start with http:// (the gateway speaks plain HTTP to its relay)' };
  const authority = raw.slice('http://'.length);
  if (authority.includes('@')) return { ok: false, message: 'no credentials in the URL: use username and passwordFile' };
  if (/[/?#]/.test(authority)) return { ok: false, message: 'must be http://host:port with no path' };
  const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority);
  if (!m) return { ok: false, message: `${JSON.stringify(raw)} is not http://host:port (like http://proxy.corp.example:3128)` };
  const [, rawHost = '', rawPort] = m;
  if (rawPort === undefined) return { ok: false, message: 'needs an explicit port (like :3128)' };
  const port = Number(rawPort);
  if (port < 1 || port > 65535) return { ok: false, message: 'port must be 1 to 65535' };
  const c = classifyHost(rawHost.replace(/^\[(.*)\]$/, '$1'));
  if (c === null) return { ok: false, message: `${JSON.stringify(rawHost)} is not a valid host name or IP address` };
  return { ok: true, host: c.host, port, hostPort: c.kind === 'ipv6' ? `[${c.host}]:${port}` : `${c.host}:${port}` };
}

/** undefined when `raw` is a usable bypass entry (host, `*.suffix`, IP literal, CIDR); otherwise what is wrong with it. */
export function bypassProblem(raw: string): string | undefined {
  const parsed = parsePattern(raw);
  if (!parsed.ok) return parsed.message;
  if (parsed.pattern.kind === 'template') return 'templates ({workspaceId}, {region}) are not supported in bypass: list the names';
  return undefined;
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

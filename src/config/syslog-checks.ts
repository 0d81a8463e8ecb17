/**
 * Checks of the syslog section the schema cannot express (names unique, listener addresses, TLS
 * files given for tls listeners, routes pointing at a logsIngestion destination, known facility
 * names, valid CIDRs). Defensive like builtinChecks: they run even when the schema failed.
 */
import { parseListenAddress } from './listen.js';
import type { RawIssue } from './schema.js';
import { checkIpOrCidr } from './checks.js';

/** RFC 5424 facility codes 0..23, named as the Syslog table's Facility column names them. */
export const SYSLOG_FACILITIES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'audit',
  'alert',
  'clock',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

/** RFC 5424 severities 0..7, as the Syslog table's SeverityLevel column names them. */
export const SYSLOG_SEVERITIES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

function rec(x: unknown): Record<string, unknown> | undefined {
  return x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;
}

export function syslogChecks(root: Record<string, unknown> | undefined): RawIssue[] {
  const syslog = rec(root?.syslog);
  if (!syslog) return [];
  const issues: RawIssue[] = [];
  const fwd = rec(root?.forwarder);
  if (!fwd) issues.push({ path: ['syslog'], message: 'needs a forwarder section: syslog records go through its spool to its destinations' });

  const listenerNames = new Map<string, number>();
  const bound = new Map<string, number>();
  if (Array.isArray(syslog.listeners)) {
    syslog.listeners.forEach((l: unknown, i) => {
      const listener = rec(l);
      if (!listener) return;
      const name = listener.name;
      if (typeof name === 'string') {
        const prev = listenerNames.get(name);
        if (prev !== undefined)
          issues.push({ path: ['syslog', 'listeners', i, 'name'], message: `duplicate listener name "${name}" (also syslog.listeners[${prev}])` });
        else listenerNames.set(name, i);
      }
      if (typeof listener.listen === 'string') {
        try {
          const a = parseListenAddress(listener.listen);
          // UDP and TCP ports are separate spaces: 514/udp and 514/tcp may both be bound.
          const key = `${listener.protocol === 'udp' ? 'udp' : 'tcp'} ${a.host}:${a.port}`;
          const prev = bound.get(key);
          if (a.port !== 0 && prev !== undefined)
            issues.push({ path: ['syslog', 'listeners', i, 'listen'], message: `same address as syslog.listeners[${prev}]` });
          else bound.set(key, i);
        } catch (err) {
          issues.push({ path: ['syslog', 'listeners', i, 'listen'], message: (err as Error).message });
        }
      }
      if (listener.protocol === 'tls' && !rec(listener.tls))
        issues.push({ path: ['syslog', 'listeners', i, 'tls'], message: 'required for a tls listener (certFile, keyFile)' });
      if (listener.protocol !== 'tls' && listener.protocol !== 'relp' && listener.tls !== undefined)
        issues.push({ path: ['syslog', 'listeners', i, 'tls'], message: 'only for a tls or relp listener' });
      const tls = rec(listener.tls);
      if (tls?.requireClientCert === true && typeof tls.clientCaFile !== 'string')
        issues.push({
          path: ['syslog', 'listeners', i, 'tls', 'requireClientCert'],
          message: 'needs clientCaFile (the CA client certificates are checked against)',
        });
    });
  }

  const destinations = new Map<string, string>();
  if (Array.isArray(fwd?.destinations)) {
    for (const d of fwd.destinations as unknown[]) {
      const dest = rec(d);
      if (typeof dest?.name === 'string') destinations.set(dest.name, typeof dest.type === 'string' ? dest.type : '');
    }
  }
  const facilities = new Set<string>(SYSLOG_FACILITIES);
  const routeNames = new Map<string, number>();
  if (Array.isArray(syslog.routes)) {
    syslog.routes.forEach((r: unknown, i) => {
      const route = rec(r);
      if (!route) return;
      const at = (...p: Array<string | number>): Array<string | number> => ['syslog', 'routes', i, ...p];
      if (typeof route.name === 'string') {
        const prev = routeNames.get(route.name);
        if (prev !== undefined) issues.push({ path: at('name'), message: `duplicate route name "${route.name}" (also syslog.routes[${prev}])` });
        else routeNames.set(route.name, i);
      }
      if (typeof route.to === 'string' && fwd) {
        const type = destinations.get(route.to);
        if (type === undefined) issues.push({ path: at('to'), message: `no forwarder destination named "${route.to}"` });
        else if (type !== 'logsIngestion')
          issues.push({ path: at('to'), message: `"${route.to}" is a ${type} destination; syslog records go to a logsIngestion destination` });
      }
      const match = rec(route.match);
      if (Array.isArray(match?.listener)) {
        match.listener.forEach((n: unknown, j) => {
          if (typeof n === 'string' && !listenerNames.has(n)) issues.push({ path: at('match', 'listener', j), message: `no syslog listener named "${n}"` });
        });
      }
      if (Array.isArray(match?.cidrs)) {
        match.cidrs.forEach((c: unknown, j) => {
          const why = typeof c === 'string' ? checkIpOrCidr(c) : undefined;
          if (why) issues.push({ path: at('match', 'cidrs', j), message: why });
        });
      }
      const names: Array<[unknown, Array<string | number>]> = [];
      if (Array.isArray(match?.facility)) match.facility.forEach((f: unknown, j) => names.push([f, at('match', 'facility', j)]));
      const filter = rec(route.filter);
      if (Array.isArray(filter?.dropFacilities)) filter.dropFacilities.forEach((f: unknown, j) => names.push([f, at('filter', 'dropFacilities', j)]));
      for (const [f, path] of names) {
        if (typeof f === 'string' && !facilities.has(f)) issues.push({ path, message: `unknown facility "${f}" (one of ${SYSLOG_FACILITIES.join(', ')})` });
      }
      const table = route.table ?? (typeof route.stream === 'string' && /commonsecuritylog/i.test(route.stream) ? 'CommonSecurityLog' : 'Syslog');
      if (table !== 'CommonSecurityLog' && (match?.cefVendor !== undefined || match?.cefProduct !== undefined))
        issues.push({ path: at('match'), message: 'cefVendor/cefProduct match CEF messages: give this route table: CommonSecurityLog' });
    });
  }
  return issues;
}

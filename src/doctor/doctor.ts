/**
 * `portcullis doctor`: from the gateway host, checks every destination the configuration allows by
 * name, and the forwarder's upstreams (ingestion endpoints and the Entra token authority), on the
 * path the gateway itself uses: the policy decision, DNS with dns.overrides, the private-address
 * guard, a TCP connect to a vetted address, then a TLS handshake with SNI and certificate
 * verification. Wildcards and address blocks name no host: they are listed, not checked, unless a
 * name under them is given with --host.
 */
import { rootCertificates, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { PortcullisConfig } from '../config/index.js';
import { DirectDialer, Resolver } from '../dial/index.js';
import { allowedDestinations, compilePolicy, parseConnectAuthority, presetProbes, type Target } from '../policy/index.js';
import { isRefused, route } from '../proxy/route.js';
import { errorCode, errorMessage } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';

export interface DoctorOptions {
  /** Extra names (host or host:port, default port 443) to check, e.g. under an allowed wildcard. */
  hosts: readonly string[];
  /** PEM of extra trusted CAs (besides the public roots and forwarder.upstream.caFile). */
  extraCa: readonly string[];
  timeoutMs: number;
}

export type Step = 'policy' | 'dns' | 'tcp' | 'tls';

export interface CheckRow {
  endpoint: string;
  /** Why it is checked: the allow rule, a forwarder destination, the token authority, --host. */
  source: string;
  verdict: 'ok' | 'fail' | 'unchecked';
  /** The step that failed, or null. */
  failedAt: Step | null;
  detail: string;
  dnsMs?: number;
  tcpMs?: number;
  tlsMs?: number;
  address?: string;
}

interface Candidate {
  target: Target;
  source: string;
}

/** The rows, in a stable order: allowlist rules, forwarder upstreams, --host names, then unchecked patterns. */
export async function runDoctor(config: PortcullisConfig, opts: DoctorOptions): Promise<CheckRow[]> {
  const policy = compilePolicy(config);
  const resolver = new Resolver({ overrides: config.dns.overrides, timeoutMs: Math.min(config.proxy.timeouts.dnsMs, opts.timeoutMs), cacheTtlMs: 0 });
  const dialer = new DirectDialer({ connectMs: opts.timeoutMs, headersMs: opts.timeoutMs, bodyMs: opts.timeoutMs });
  const ca = [...rootCertificates, ...opts.extraCa];

  const candidates: Candidate[] = [];
  const unchecked: CheckRow[] = [];
  const seen = new Set<string>();
  const add = (target: Target, source: string): void => {
    const key = hostPort(target.host, target.port);
    if (seen.has(key)) return;
    seen.add(key);
    candidates.push({ target, source });
  };
  for (const d of allowedDestinations(policy)) {
    // TLS is what agents speak to these names: 443 when the rule allows it, else its first port.
    const port = d.ports.includes(443) ? 443 : d.ports[0];
    if (port === undefined) continue;
    for (const host of d.hosts) add(parseConnectAuthority(hostPort(host, port)), `rule ${d.rule}`);
    for (const p of d.patterns) {
      unchecked.push({
        endpoint: p,
        source: `rule ${d.rule}`,
        verdict: 'unchecked',
        failedAt: null,
        detail: 'names no single host: check a name under it with --host',
      });
    }
  }
  // Names the presets' agents are known to use under a wildcard (gbl.his.arc.azure.com, ...).
  for (const p of presetProbes(config.allow.presets)) add(parseConnectAuthority(hostPort(p.host, 443)), `rule ${p.rule} (known name)`);
  for (const u of forwarderUpstreams(config)) add(u.target, u.source);
  for (const h of opts.hosts) add(parseConnectAuthority(h.includes(':') ? h : `${h}:443`), '--host');

  const rows = await Promise.all(candidates.map((c) => checkOne(c, { policy, resolver, dialer }, ca, opts.timeoutMs)));
  await dialer.destroy().catch(() => undefined);
  return [...rows, ...unchecked];
}

/** The forwarder's upstream origins and the Entra authority its credentials get tokens from. */
function forwarderUpstreams(config: PortcullisConfig): Candidate[] {
  const fwd = config.forwarder;
  if (!fwd) return [];
  const out: Candidate[] = [];
  const fromUrl = (url: string, source: string): void => {
    const u = new URL(url);
    out.push({ target: parseConnectAuthority(hostPort(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port) || 443)), source });
  };
  for (const d of fwd.destinations) {
    if (d.type === 'logsIngestion') fromUrl(d.endpoint, `forwarder destination ${d.name}`);
    else fromUrl(d.endpoint ?? `https://${d.workspaceId}.ods.opinsights.azure.com`, `forwarder destination ${d.name}`);
  }
  const needsTokens = fwd.credentials.some((c) => c.type !== 'managedIdentity');
  if (needsTokens) fromUrl(fwd.upstream.authorityHost, 'forwarder token authority');
  return out;
}

async function checkOne(c: Candidate, ctx: Parameters<typeof route>[0], ca: string[], timeoutMs: number): Promise<CheckRow> {
  const endpoint = hostPort(c.target.host, c.target.port);
  const row = (fields: Omit<CheckRow, 'endpoint' | 'source'>): CheckRow => ({ endpoint, source: c.source, ...fields });
  const routed = await route(ctx, c.target, 'portcullis-doctor');
  if (isRefused(routed)) {
    const step: Step = routed.refused.reason.startsWith('dns') ? 'dns' : 'policy';
    return row({ verdict: 'fail', failedAt: step, detail: `${routed.refused.code}: ${routed.refused.message}` });
  }
  const dnsMs = Math.round(routed.dnsMs);
  const t0 = performance.now();
  let socket: Socket;
  try {
    socket = await routed.dialer.connect(routed);
  } catch (err) {
    return row({ verdict: 'fail', failedAt: 'tcp', detail: `${errorCode(err) ?? 'connect'}: ${errorMessage(err)}`, dnsMs });
  }
  const tcpMs = Math.round(performance.now() - t0);
  const address = socket.remoteAddress ?? '';
  const t1 = performance.now();
  try {
    const tls = await handshake(socket, c.target.host, ca, timeoutMs);
    const tlsMs = Math.round(performance.now() - t1);
    const cert = tls.getPeerCertificate();
    const protocol = tls.getProtocol() ?? 'TLS';
    tls.destroy();
    const subject = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
    return row({
      verdict: 'ok',
      failedAt: null,
      detail: `${protocol}${subject ? `, certificate ${subject}` : ''}`,
      dnsMs,
      tcpMs,
      tlsMs,
      address,
    });
  } catch (err) {
    socket.destroy();
    return row({ verdict: 'fail', failedAt: 'tls', detail: `${errorCode(err) ?? 'tls'}: ${errorMessage(err)}`, dnsMs, tcpMs, address });
  }
}

function handshake(socket: Socket, servername: string, ca: string[], timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ socket, servername, ca, minVersion: 'TLSv1.2' });
    const timer = setTimeout(() => tls.destroy(Object.assign(new Error(`no TLS handshake within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    tls.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(tls);
    });
    tls.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A fixed-width table and a verdict line; exit code 0 when every checked endpoint passed. */
export function formatDoctor(rows: readonly CheckRow[]): { text: string; exitCode: number } {
  const ms = (n: number | undefined): string => (n === undefined ? '-' : `${n} ms`);
  const table = [
    ['endpoint', 'checked for', 'DNS', 'TCP', 'TLS', 'verdict'],
    ...rows.map((r) => [
      r.endpoint,
      r.source,
      ms(r.dnsMs),
      ms(r.tcpMs),
      ms(r.tlsMs),
      r.verdict === 'ok' ? `OK (${r.detail})` : r.verdict === 'unchecked' ? `not checked: ${r.detail}` : `FAIL at ${r.failedAt ?? '?'}: ${r.detail}`,
    ]),
  ];
  const widths = table[0]?.map((_, i) => Math.max(...table.map((cols) => (cols[i] ?? '').length))) ?? [];
  const lines = table.map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '));
  const failed = rows.filter((r) => r.verdict === 'fail').length;
  const checked = rows.filter((r) => r.verdict !== 'unchecked').length;
  const verdict =
    failed === 0
      ? `verdict: OK, ${checked} endpoint${checked === 1 ? '' : 's'} reachable on the gateway's path`
      : `verdict: ${failed} of ${checked} endpoint${checked === 1 ? '' : 's'} NOT reachable: agents using them will fail`;
  return { text: [...lines, '', verdict, ''].join('\n'), exitCode: failed === 0 ? 0 : 1 };
}

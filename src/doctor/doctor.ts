/**
 * `portcullis doctor`: from the gateway host, checks every destination the configuration allows by
 * name, and the forwarder's upstreams (ingestion endpoints and the Entra token authority), on the
 * path the gateway itself uses: the policy decision, DNS with dns.overrides, the private-address
 * guard, a TCP connect to a vetted address, then a TLS handshake with SNI and certificate
 * verification. Wildcards and address blocks name no host: they are listed, not checked, unless a
 * name under them is given with --host. With upstreamProxy, a destination not on its bypass list is
 * checked through the relay as the gateway reaches it: DNS and TCP of the relay, the relay's answer
 * to CONNECT, then the TLS handshake with the destination's SNI inside the tunnel (the next relay
 * when one fails, as the gateway fails over).
 */
import { rootCertificates, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { PortcullisConfig } from '../config/index.js';
import { dial, DirectDialer, RelayHealth, relayHandshake, Resolver, toResolved, type RelayEndpoint } from '../dial/index.js';
import { allowedDestinations, compilePolicy, parseConnectAuthority, presetProbes, type Target } from '../policy/index.js';
import { isRefused, route, type RouteContext } from '../proxy/route.js';
import { buildRelays, relayEndpoints } from '../proxy/relays.js';
import { errorCode, errorMessage } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';

export interface DoctorOptions {
  /** Extra names (host or host:port, default port 443) to check, e.g. under an allowed wildcard. */
  hosts: readonly string[];
  /** PEM of extra trusted CAs (besides the public roots and forwarder.upstream.caFile). */
  extraCa: readonly string[];
  timeoutMs: number;
}

/** dns and tcp are the relay's when the check goes through one; connect is the relay's answer to CONNECT. */
export type Step = 'policy' | 'dns' | 'tcp' | 'connect' | 'tls';

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
  /** The relay's answer to CONNECT (through a relay only). */
  connectMs?: number;
  tlsMs?: number;
  address?: string;
  /** The relay proxy (host:port) the check went through, or undefined (direct). */
  via?: string;
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
  const relays = buildRelays(config.upstreamProxy, config.proxy, new RelayHealth());
  const relayList = config.upstreamProxy ? relayEndpoints(config.upstreamProxy) : [];
  const connectMs = config.upstreamProxy ? Math.min(config.upstreamProxy.connectMs, opts.timeoutMs) : opts.timeoutMs;

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

  const rows = await Promise.all(candidates.map((c) => checkOne(c, { policy, resolver, dialer, relay: relays }, ca, opts.timeoutMs, relayList, connectMs)));
  await dialer.destroy().catch(() => undefined);
  await relays?.dialer.destroy().catch(() => undefined);
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

async function checkOne(
  c: Candidate,
  ctx: RouteContext,
  ca: string[],
  timeoutMs: number,
  relays: readonly RelayEndpoint[],
  relayConnectMs: number,
): Promise<CheckRow> {
  const endpoint = hostPort(c.target.host, c.target.port);
  const row = (fields: Omit<CheckRow, 'endpoint' | 'source'>): CheckRow => ({ endpoint, source: c.source, ...fields });
  const routed = await route(ctx, c.target, 'portcullis-doctor');
  if (isRefused(routed)) {
    const step: Step = routed.refused.reason.startsWith('dns') ? 'dns' : 'policy';
    return row({ verdict: 'fail', failedAt: step, detail: `${routed.refused.code}: ${routed.refused.message}` });
  }
  if (routed.dialer.kind === 'relay') return checkThroughRelays(c, relays, ca, timeoutMs, relayConnectMs);
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
  const tls = await tlsStep(socket, c.target.host, ca, timeoutMs);
  if (!tls.ok) return row({ verdict: 'fail', failedAt: 'tls', detail: tls.detail, dnsMs, tcpMs, address });
  return row({ verdict: 'ok', failedAt: null, detail: tls.detail, dnsMs, tcpMs, tlsMs: tls.tlsMs, address });
}

/** The TLS handshake with SNI on a connected socket (direct or a relay's tunnel), closed after; what a row says of it. */
async function tlsStep(
  socket: Socket,
  host: string,
  ca: string[],
  timeoutMs: number,
): Promise<{ ok: true; tlsMs: number; detail: string } | { ok: false; detail: string }> {
  const t0 = performance.now();
  try {
    const tls = await handshake(socket, host, ca, timeoutMs);
    const tlsMs = Math.round(performance.now() - t0);
    const cert = tls.getPeerCertificate();
    const protocol = tls.getProtocol() ?? 'TLS';
    tls.destroy();
    const subject = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
    return { ok: true, tlsMs, detail: `${protocol}${subject ? `, certificate ${subject}` : ''}` };
  } catch (err) {
    socket.destroy();
    return { ok: false, detail: `${errorCode(err) ?? 'tls'}: ${errorMessage(err)}` };
  }
}

/**
 * Through the relays in order, as the gateway would: the first that gives a tunnel is the one the
 * row shows (with the failures of those before it); when none does, the last failure is the row's.
 */
async function checkThroughRelays(c: Candidate, relays: readonly RelayEndpoint[], ca: string[], timeoutMs: number, connectMs: number): Promise<CheckRow> {
  const endpoint = hostPort(c.target.host, c.target.port);
  const skipped: string[] = [];
  let last: CheckRow = { endpoint, source: c.source, verdict: 'fail', failedAt: 'tcp', detail: 'no relay proxy configured' };
  for (const relay of relays) {
    const row = (fields: Omit<CheckRow, 'endpoint' | 'source' | 'via'>): CheckRow => ({ endpoint, source: c.source, via: relay.label, ...fields });
    const t0 = performance.now();
    let address: string;
    try {
      address = isIP(relay.host) !== 0 ? relay.host : (await lookup(relay.host)).address;
    } catch (err) {
      last = row({ verdict: 'fail', failedAt: 'dns', detail: `relay ${relay.label}: ${errorCode(err) ?? 'dns'}: ${errorMessage(err)}` });
      skipped.push(last.detail);
      continue;
    }
    const dnsMs = Math.round(performance.now() - t0);
    const t1 = performance.now();
    let socket: Socket;
    try {
      socket = await dial(toResolved(address), relay.port, { timeoutMs: connectMs });
    } catch (err) {
      last = row({ verdict: 'fail', failedAt: 'tcp', detail: `relay ${relay.label}: ${errorCode(err) ?? 'connect'}: ${errorMessage(err)}`, dnsMs });
      skipped.push(last.detail);
      continue;
    }
    const tcpMs = Math.round(performance.now() - t1);
    const t2 = performance.now();
    try {
      socket = await relayHandshake(socket, relay, c.target.host, c.target.port, connectMs);
    } catch (err) {
      last = row({ verdict: 'fail', failedAt: 'connect', detail: errorMessage(err), dnsMs, tcpMs, address });
      skipped.push(last.detail);
      continue;
    }
    const connectStepMs = Math.round(performance.now() - t2);
    const before = skipped.length > 0 ? ` (after: ${skipped.join('; ')})` : '';
    const tls = await tlsStep(socket, c.target.host, ca, timeoutMs);
    // The relay gave a tunnel: a TLS failure is the destination's, not a reason to try another relay.
    if (!tls.ok) return row({ verdict: 'fail', failedAt: 'tls', detail: `${tls.detail}${before}`, dnsMs, tcpMs, connectMs: connectStepMs, address });
    return row({ verdict: 'ok', failedAt: null, detail: `${tls.detail}${before}`, dnsMs, tcpMs, connectMs: connectStepMs, tlsMs: tls.tlsMs, address });
  }
  if (skipped.length > 1) last = { ...last, detail: skipped.join('; ') };
  return last;
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
    ['endpoint', 'checked for', 'path', 'DNS', 'TCP', 'CONNECT', 'TLS', 'verdict'],
    ...rows.map((r) => [
      r.endpoint,
      r.source,
      r.verdict === 'unchecked' ? '-' : r.via !== undefined ? `relay ${r.via}` : 'direct',
      ms(r.dnsMs),
      ms(r.tcpMs),
      ms(r.connectMs),
      ms(r.tlsMs),
      r.verdict === 'ok'
        ? `OK (${r.detail})`
        : r.verdict === 'unchecked'
          ? `not checked: ${r.detail}`
          : `FAIL at ${r.failedAt ?? '?'}${r.via !== undefined && r.failedAt !== 'tls' ? ' (relay)' : ''}: ${r.detail}`,
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
  const legend = rows.some((r) => r.via !== undefined)
    ? ["through a relay: DNS and TCP are the relay's, CONNECT is its answer, TLS is the destination's handshake (SNI) inside the tunnel", '']
    : [];
  return { text: [...lines, '', ...legend, verdict, ''].join('\n'), exitCode: failed === 0 ? 0 : 1 };
}

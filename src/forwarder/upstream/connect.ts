/**
 * The undici `connect` function every upstream dispatcher uses: the destination must pass the
 * proxy's allowlist and DNS rules exactly like a tunnel (policy decision, dns.overrides, private-
 * address guard, dial the vetted IP, never the name; or CONNECT through the relay proxy, as a tunnel
 * would), then TLS with SNI = the name.
 */
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates } from 'node:tls';
import { buildConnector } from 'undici';
import { DirectDialer, type Resolver } from '../../dial/index.js';
import { ForwarderErrors } from '../../errors/catalogue.js';
import { parseConnectAuthority, type Policy, type Target } from '../../policy/index.js';
import { isRefused, route, type RelayChoice } from '../../proxy/route.js';
import { PortcullisError, isPortcullisError } from '../../util/errors.js';

/** The client the policy sees for the forwarder's own upstream connections. */
const FORWARDER_CLIENT = 'portcullis-forwarder';

export interface ConnectorOptions {
  /** Read at every connect, so a reload applies to new connections. */
  policy: () => Policy;
  resolver: () => Resolver;
  /** The relay proxies (upstreamProxy) in force, read at every connect like the policy; null = direct. */
  relay?: () => RelayChoice | null;
  connectTimeoutMs: number;
  /** Extra trusted CA (PEM), added to the public roots. */
  extraCa?: string;
}

export function upstreamConnector(opts: ConnectorOptions): buildConnector.connector {
  // Chosen by route() after the decision, as for tunnels: through a relay proxy unless bypassed.
  const dialer = new DirectDialer({ connectMs: opts.connectTimeoutMs, headersMs: opts.connectTimeoutMs, bodyMs: opts.connectTimeoutMs });
  // One secure context for every connection: given as `ca`, the ~140 public roots plus the extra
  // CA were parsed again at each connect (3-4% of the ingest's main thread under load).
  const secureContext = opts.extraCa ? createSecureContext({ ca: [...rootCertificates, opts.extraCa], minVersion: 'TLSv1.2' }) : undefined;
  const tlsConnect = buildConnector({
    ...(secureContext ? { secureContext } : {}),
    timeout: opts.connectTimeoutMs,
    minVersion: 'TLSv1.2',
  });
  return (options, callback) => {
    const port = Number(options.port) || (options.protocol === 'http:' ? 80 : 443);
    const host = options.hostname;
    let target: Target;
    try {
      target = parseConnectAuthority(host.startsWith('[') || !host.includes(':') ? `${host}:${port}` : `[${host}]:${port}`);
    } catch (err) {
      callback(err instanceof Error ? err : new Error(String(err)), null);
      return;
    }
    void (async () => {
      const routed = await route({ policy: opts.policy(), resolver: opts.resolver(), dialer, relay: opts.relay?.() ?? null }, target, FORWARDER_CLIENT);
      if (isRefused(routed)) {
        throw new PortcullisError(
          ForwarderErrors.FWD_UPSTREAM_FORBIDDEN.code,
          `upstream ${host}:${port} refused by the gateway's policy: ${routed.refused.reason} (${routed.refused.message})`,
        );
      }
      const socket = await routed.dialer.connect(routed);
      if (options.protocol === 'http:') return socket;
      // TLS over the socket we dialled; SNI and certificate check against the name.
      return await new Promise<import('node:net').Socket>((resolve, reject) => {
        tlsConnect({ ...options, servername: options.servername ?? target.host, httpSocket: socket }, (err, tlsSocket) => {
          if (err || !tlsSocket) {
            socket.destroy();
            reject(err ?? new Error('TLS connect failed'));
          } else resolve(tlsSocket);
        });
      });
    })().then(
      (socket) => callback(null, socket),
      (err: unknown) => callback(isPortcullisError(err) || err instanceof Error ? err : new Error(String(err)), null),
    );
  };
}

/**
 * An https.Agent whose connections go through the same vetted connector: token requests to the
 * Entra authority (@azure/identity's pipeline takes an agent) obey the allowlist and dns.overrides
 * like every other upstream connection.
 */
export function vettedHttpsAgent(connect: buildConnector.connector, opts: AgentOptions = {}): HttpsAgent {
  const agent = new HttpsAgent({ keepAlive: true, ...opts });
  // Node's Agent accepts a socket through the callback of createConnection.
  (agent as unknown as { createConnection: unknown }).createConnection = (
    options: { host?: string; port?: number | string; servername?: string },
    callback: (err: Error | null, socket?: Duplex) => void,
  ): undefined => {
    const host = options.host ?? 'localhost';
    connect({ hostname: host, host, protocol: 'https:', port: String(options.port ?? 443), servername: options.servername || host }, (err, socket) => {
      if (err || !socket) callback(err ?? new Error('connect failed'));
      else callback(null, socket);
    });
    return undefined;
  };
  return agent;
}

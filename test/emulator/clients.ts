/**
 * How a test points the official Azure SDK (and plain clients) at the emulator or at the gateway
 * WITHOUT NODE_TLS_REJECT_UNAUTHORIZED=0.
 *
 * What works with @azure/core-rest-pipeline (1.24, used by @azure/identity and
 * @azure/monitor-ingestion): every client's options extend PipelineOptions, whose `agent` field
 * adds agentPolicy(agent) — the Node http client then uses that https.Agent for every request.
 * An https.Agent carries both the trust (`ca`) and the name resolution (`lookup`), so the SDK can
 * use the REAL host names (login.microsoftonline.com, <dce>.<region>-1.ingest.monitor.azure.com)
 * with the emulator's port and still land on 127.0.0.1 with SNI and Host intact.
 * (`tlsOptions: { ca }` alone also works for trust, but it cannot resolve the names.)
 * Credentials also need `disableInstanceDiscovery: true`: with a non-public authority host MSAL
 * otherwise asks the real login.microsoftonline.com:443 for instance metadata.
 */
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { rootCertificates } from 'node:tls';
import { signDataCollectorRequest } from '../../src/forwarder/upstream/shared-key.js';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A dns.lookup replacement that answers 127.0.0.1 for every name (tests only dial loopback). */
export function loopbackLookup(_hostname: string, options: LookupOptions | number | LookupCallback, callback?: LookupCallback): void {
  const cb = typeof options === 'function' ? options : callback;
  if (cb === undefined) return;
  const all = typeof options === 'object' && options.all === true;
  if (all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
}

export interface EmulatorAgentOptions {
  /** PEM of the CA to trust (the emulator's caPem, or the gateway's ingest CA). */
  caPem: string | string[];
  /** Also trust the public roots (default false: tests trust only the test CA). */
  withPublicRoots?: boolean;
  /** Resolve every name to 127.0.0.1 (default true). */
  loopback?: boolean;
  keepAlive?: boolean;
  /** Client certificate for mTLS, if any. */
  cert?: string;
  key?: string;
}

/** An https.Agent that trusts the test CA and resolves every name to 127.0.0.1. */
export function emulatorAgent(opts: EmulatorAgentOptions): HttpsAgent {
  const ca = [...(Array.isArray(opts.caPem) ? opts.caPem : [opts.caPem]), ...(opts.withPublicRoots === true ? rootCertificates : [])];
  return new HttpsAgent({
    ca,
    keepAlive: opts.keepAlive ?? true,
    ...(opts.loopback === false ? {} : { lookup: loopbackLookup as unknown as NonNullable<ConstructorParameters<typeof HttpsAgent>[0]>['lookup'] }),
    ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
    ...(opts.key !== undefined ? { key: opts.key } : {}),
  });
}

/**
 * Options for ClientSecretCredential / ClientCertificateCredential / LogsIngestionClient.
 * Spread into the client's options: `new ClientSecretCredential(t, c, s, sdkOptions(emu))`.
 */
export function sdkOptions(
  target: { caPem: string; authorityHost?: string },
  extra: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number } = {},
): {
  agent: HttpsAgent;
  authorityHost?: string;
  disableInstanceDiscovery: true;
  retryOptions: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number };
} {
  return {
    agent: emulatorAgent({ caPem: target.caPem }),
    ...(target.authorityHost !== undefined ? { authorityHost: target.authorityHost } : {}),
    disableInstanceDiscovery: true,
    retryOptions: { ...extra },
  };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = unknown>(): T;
}

/** One HTTPS request through `agent` (defaults: POST). */
export function send(
  url: string,
  opts: { agent: HttpsAgent; method?: string; headers?: Record<string, string>; body?: Uint8Array | string },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? Buffer.from(opts.body) : Buffer.from(opts.body);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = httpsRequest(url, { method: opts.method ?? 'POST', agent: opts.agent, headers, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json: <T>() => JSON.parse(buf.toString('utf8')) as T });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A Data Collector API client: signs with SharedKey (documented algorithm) and posts. */
export function postDataCollector(opts: {
  endpoint: string;
  agent: HttpsAgent;
  workspaceId: string;
  sharedKey: string;
  logType: string;
  body: Uint8Array | string;
  timeGeneratedField?: string;
  now?: Date;
  /** Override headers after signing (negative tests). */
  headers?: Record<string, string>;
}): Promise<HttpAnswer> {
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : Buffer.from(opts.body);
  const headers = signDataCollectorRequest({
    workspaceId: opts.workspaceId,
    sharedKey: opts.sharedKey,
    body,
    logType: opts.logType,
    ...(opts.timeGeneratedField !== undefined ? { timeGeneratedField: opts.timeGeneratedField } : {}),
    ...(opts.now !== undefined ? { now: opts.now } : {}),
  });
  return send(`${opts.endpoint}/api/logs?api-version=2016-04-01`, { agent: opts.agent, headers: { ...headers, ...(opts.headers ?? {}) }, body });
}

/**
 * Microsoft Entra bearer tokens for the Logs Ingestion API (scope https://monitor.azure.com/.default),
 * obtained with @azure/identity: client secret, client certificate, or managed identity (Azure Arc
 * on on-prem servers). Tokens are cached and refreshed `refreshMarginMs` before expiry; concurrent
 * callers share one request (single-flight); `forceRefresh()` is for a 401 from upstream.
 *
 * Network seam: token requests to the authority are HTTP requests made by @azure/identity's
 * pipeline. Pass `agent` (an https.Agent whose connections obey the proxy's allowlist and
 * dns.overrides, e.g. with a vetted `lookup`) or `httpClient` (a core-rest-pipeline HttpClient) to
 * plug the vetted connection in. Without either, an https.Agent is built here that trusts the public
 * roots plus `caFile`. When `agent` or `httpClient` is given, trust is theirs: `caFile` is ignored.
 * Managed identity talks plain HTTP to a local endpoint (Arc: 127.0.0.1:40342, App Service: env),
 * never through the upstream allowlist, so the seam does not apply to it.
 *
 * Secrets are read from files at every refresh (rotation needs no restart) and never logged.
 */
import { readFile } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  ClientCertificateCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type AccessToken,
  type TokenCredential,
  type TokenCredentialOptions,
} from '@azure/identity';
import { PortcullisError } from '../../util/errors.js';

export const MONITOR_SCOPE = 'https://monitor.azure.com/.default';
export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';
export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60 * 1000;
export const DEFAULT_TOKEN_TIMEOUT_MS = 30_000;
/** Error code of every token failure (the message says which credential and why, never a secret). */
export const PCL_ERR_UPSTREAM_TOKEN = 'PCL_ERR_UPSTREAM_TOKEN';

/** Public and sovereign cloud authorities MSAL knows without instance discovery calls. */
const WELL_KNOWN_AUTHORITY_HOSTS = new Set([
  'login.microsoftonline.com',
  'login.microsoftonline.us',
  'login.chinacloudapi.cn',
  'login.partner.microsoftonline.cn',
]);

export type EntraCredentialConfig =
  | { type: 'clientSecret'; name?: string; tenantId: string; clientId: string; secretFile?: string; secretEnv?: string }
  | { type: 'clientCertificate'; name?: string; tenantId: string; clientId: string; certificateFile: string; sendCertificateChain?: boolean }
  | { type: 'managedIdentity'; name?: string; clientId?: string };

/** What core-rest-pipeline accepts as a custom HttpClient (the type, without depending on the package). */
export type PipelineHttpClient = NonNullable<TokenCredentialOptions['httpClient']>;

export interface TokenRefreshEvent {
  credential: string;
  expiresOnTimestamp: number;
  durationMs: number;
  forced: boolean;
}

export interface TokenFailureEvent {
  credential: string;
  error: PortcullisError;
  forced: boolean;
}

export interface EntraTokenProviderOptions {
  credential: EntraCredentialConfig;
  /** Default https://login.microsoftonline.com; sovereign clouds and the emulator set their own. */
  authorityHost?: string;
  /** PEM file of an extra CA to trust (added to the public roots). */
  caFile?: string;
  /** The vetted connection (see the module comment). */
  agent?: HttpsAgent;
  httpClient?: PipelineHttpClient;
  /** Default: false for the well-known cloud hosts on port 443, true for any other authority. */
  disableInstanceDiscovery?: boolean;
  refreshMarginMs?: number;
  timeoutMs?: number;
  scope?: string;
  onRefresh?: (e: TokenRefreshEvent) => void;
  onFailure?: (e: TokenFailureEvent) => void;
}

export interface TokenProviderStats {
  refreshes: number;
  failures: number;
  /** Expiry of the cached token (epoch ms), null when none. */
  expiresOnTimestamp: number | null;
}

interface Cached {
  token: string;
  expiresOnTimestamp: number;
  refreshAt: number;
}

function defaultInstanceDiscoveryOff(authorityHost: string): boolean {
  try {
    const u = new URL(authorityHost);
    return !(WELL_KNOWN_AUTHORITY_HOSTS.has(u.hostname.toLowerCase()) && (u.port === '' || u.port === '443'));
  } catch {
    return true;
  }
}

export class EntraTokenProvider {
  readonly name: string;
  private cached: Cached | null = null;
  private inflight: Promise<Cached> | null = null;
  private refreshes = 0;
  private failures = 0;
  private agent: HttpsAgent | undefined;
  private ownAgent = false;
  private caPem: Promise<string> | undefined;
  private managed: ManagedIdentityCredential | undefined;

  constructor(private readonly opts: EntraTokenProviderOptions) {
    const c = opts.credential;
    this.name = c.name ?? `${c.type}${'clientId' in c && c.clientId !== undefined ? `:${c.clientId}` : ''}`;
    this.agent = opts.agent;
  }

  /** A valid bearer token (cached until refreshMarginMs before expiry). */
  async getToken(): Promise<string> {
    const now = Date.now();
    const c = this.cached;
    if (c !== null && now < c.refreshAt) return c.token;
    try {
      return (await this.refresh(false)).token;
    } catch (err) {
      // A failed early refresh keeps serving the cached token while it is still valid.
      if (c !== null && Date.now() < c.expiresOnTimestamp) return c.token;
      throw err;
    }
  }

  /** Drops the cached token and fetches a new one (after a 401 from upstream). Shared with a refresh in flight. */
  async forceRefresh(): Promise<string> {
    this.cached = null;
    return (await this.refresh(true)).token;
  }

  stats(): TokenProviderStats {
    return { refreshes: this.refreshes, failures: this.failures, expiresOnTimestamp: this.cached?.expiresOnTimestamp ?? null };
  }

  /** Closes the agent this provider built itself (an injected one belongs to the caller). */
  close(): void {
    if (this.ownAgent) this.agent?.destroy();
  }

  private refresh(forced: boolean): Promise<Cached> {
    this.inflight ??= this.fetch(forced).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetch(forced: boolean): Promise<Cached> {
    const started = Date.now();
    let token: AccessToken | null;
    try {
      const credential = await this.credential();
      token = await credential.getToken(this.opts.scope ?? MONITOR_SCOPE, {
        abortSignal: AbortSignal.timeout(this.opts.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS),
      });
      if (token === null) throw new Error('the credential returned no token');
    } catch (err) {
      this.failures += 1;
      const error = new PortcullisError(PCL_ERR_UPSTREAM_TOKEN, `Entra token for credential '${this.name}' failed: ${describe(err)}`, { cause: err });
      this.opts.onFailure?.({ credential: this.name, error, forced });
      throw error;
    }
    const margin = this.opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    const refreshAt = Math.min(token.expiresOnTimestamp - margin, token.refreshAfterTimestamp ?? Number.POSITIVE_INFINITY);
    const cached: Cached = { token: token.token, expiresOnTimestamp: token.expiresOnTimestamp, refreshAt };
    this.cached = cached;
    this.refreshes += 1;
    this.opts.onRefresh?.({ credential: this.name, expiresOnTimestamp: token.expiresOnTimestamp, durationMs: Date.now() - started, forced });
    return cached;
  }

  private async transportOptions(): Promise<TokenCredentialOptions & { disableInstanceDiscovery?: boolean }> {
    const authorityHost = this.opts.authorityHost ?? DEFAULT_AUTHORITY_HOST;
    const base: TokenCredentialOptions & { disableInstanceDiscovery?: boolean } = {
      authorityHost,
      disableInstanceDiscovery: this.opts.disableInstanceDiscovery ?? defaultInstanceDiscoveryOff(authorityHost),
      // Our own retry loop (the sender's) decides; keep identity's short.
      retryOptions: { maxRetries: 2 },
    };
    if (this.opts.httpClient !== undefined) return { ...base, httpClient: this.opts.httpClient };
    if (this.agent === undefined && this.opts.caFile !== undefined) {
      this.caPem ??= readFile(this.opts.caFile, 'utf8');
      this.agent = new HttpsAgent({ keepAlive: true, ca: [...rootCertificates, await this.caPem] });
      this.ownAgent = true;
    }
    return this.agent !== undefined ? { ...base, agent: this.agent } : base;
  }

  /** A fresh credential per refresh for app credentials: re-reads the secret file and bypasses MSAL's cache. */
  private async credential(): Promise<TokenCredential> {
    const c = this.opts.credential;
    switch (c.type) {
      case 'clientSecret': {
        const secret = c.secretFile !== undefined ? (await readFileFor(c.secretFile, 'secretFile')).trim() : (process.env[c.secretEnv ?? ''] ?? '').trim();
        if (secret === '')
          throw new Error(c.secretFile !== undefined ? `secretFile ${c.secretFile} is empty` : `environment variable ${c.secretEnv} is not set`);
        return new ClientSecretCredential(c.tenantId, c.clientId, secret, await this.transportOptions());
      }
      case 'clientCertificate': {
        const pem = await readFileFor(c.certificateFile, 'certificateFile');
        return new ClientCertificateCredential(
          c.tenantId,
          c.clientId,
          { certificate: pem },
          { ...(await this.transportOptions()), ...(c.sendCertificateChain === true ? { sendCertificateChain: true } : {}) },
        );
      }
      case 'managedIdentity':
        // One instance: MSAL keeps managed-identity tokens in a process-wide cache anyway, so a new
        // instance would not bypass it (forceRefresh can only get a new token once MSAL's expires).
        this.managed ??= c.clientId !== undefined ? new ManagedIdentityCredential({ clientId: c.clientId }) : new ManagedIdentityCredential();
        return this.managed;
    }
  }
}

async function readFileFor(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** One line about an identity error, without request bodies (which could hold an assertion). */
function describe(err: unknown): string {
  if (err instanceof Error) {
    const first = err.message.split('\n')[0] ?? '';
    return `${err.name}: ${first.slice(0, 500)}`;
  }
  return String(err);
}

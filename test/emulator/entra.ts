/**
 * The emulator's Microsoft Entra side: OpenID metadata, the v2.0 token endpoint (client-credentials
 * grant with client_secret or a certificate-signed client_assertion), managed-identity endpoints
 * (App Service style IDENTITY_ENDPOINT/IDENTITY_HEADER, and the Azure Arc challenge flow), and the
 * validation of the bearer tokens it issued (signature, expiry, audience, revocation).
 */
import { createHash, generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual, X509Certificate, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, numberClaim, signJwt, stringClaim, verifyJwtSignature } from './jwt.js';

export const MONITOR_AUDIENCE = 'https://monitor.azure.com';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface AppRegistration {
  tenantId: string;
  clientId: string;
  /** Valid client secrets (several: rotation). */
  secrets?: string[];
  /** PEM certificates whose keys may sign client assertions. */
  certificatesPem?: string[];
  /** Access token lifetime for this app (default: the emulator's). */
  tokenLifetimeSec?: number;
}

export interface ManagedIdentityRegistration {
  /** Client id the issued tokens carry (a user-assigned identity is asked for by this id). */
  clientId: string;
  tenantId: string;
  /** System-assigned: answered when the request names no identity. Default true. */
  systemAssigned?: boolean;
  tokenLifetimeSec?: number;
}

interface RegisteredCert {
  publicKey: KeyObject;
  x5t: string;
  x5tS256: string;
}

interface App {
  reg: AppRegistration;
  certs: RegisteredCert[];
}

export interface TokenResult {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export type BearerVerdict = { ok: true; clientId: string; tenantId: string } | { ok: false; code: string; message: string };

export interface EntraOptions {
  tokenLifetimeSec: number;
  /** Resources (audiences) tokens may be issued for. */
  resources: string[];
  /** Arc flow: directory where the emulator writes the challenge key files. */
  arcKeyDir?: string;
}

function aadError(status: number, error: string, code: number, description: string): TokenResult {
  const trace = randomUUID();
  const correlation = randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${trace} Correlation ID: ${correlation} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: trace,
      correlation_id: correlation,
    },
  };
}

function secretEquals(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

export class EntraEmulator {
  private readonly signingKey: KeyObject;
  readonly publicKey: KeyObject;
  private readonly kid = randomBytes(8).toString('hex');
  private readonly apps = new Map<string, App>();
  private readonly identities = new Map<string, ManagedIdentityRegistration>();
  private revokedBeforeMs = 0;
  private readonly arcSecrets = new Set<string>();
  /** Tokens issued, per client id (apps and managed identities). */
  readonly tokensIssued = new Map<string, number>();
  /** The App Service style secret header (IDENTITY_HEADER) the MI endpoint expects. */
  readonly identityHeader = randomBytes(16).toString('hex');

  constructor(private readonly opts: EntraOptions) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.signingKey = privateKey;
    this.publicKey = publicKey;
  }

  addApp(reg: AppRegistration): void {
    const certs = (reg.certificatesPem ?? []).map((pem): RegisteredCert => {
      const x = new X509Certificate(pem);
      return {
        publicKey: x.publicKey,
        x5t: createHash('sha1').update(x.raw).digest('base64url'),
        x5tS256: createHash('sha256').update(x.raw).digest('base64url'),
      };
    });
    this.apps.set(reg.clientId, { reg, certs });
  }

  addManagedIdentity(reg: ManagedIdentityRegistration): void {
    this.identities.set(reg.clientId, reg);
  }

  /** Every token issued before now answers 401 from the ingestion APIs (as if expired). */
  expireTokens(): void {
    this.revokedBeforeMs = Date.now() + 1;
  }

  /** A token as the token endpoint would issue it (for tests that need one without a client). */
  issueAccessToken(opts: { tenantId: string; clientId: string; resource?: string; lifetimeSec?: number }): {
    token: string;
    expiresIn: number;
  } {
    const now = Date.now();
    const nowSec = Math.floor(now / 1000);
    const lifetime = opts.lifetimeSec ?? this.opts.tokenLifetimeSec;
    const token = signJwt(
      {
        aud: opts.resource ?? MONITOR_AUDIENCE,
        iss: `https://sts.windows.net/${opts.tenantId}/`,
        iat: nowSec,
        nbf: nowSec - 1,
        exp: nowSec + lifetime,
        appid: opts.clientId,
        azp: opts.clientId,
        tid: opts.tenantId,
        oid: opts.clientId,
        sub: opts.clientId,
        uti: randomBytes(12).toString('base64url'),
        ver: '1.0',
        // Millisecond issue time: lets expireTokens() revoke exactly the tokens issued before it.
        emu_iat_ms: now,
      },
      this.signingKey,
      this.kid,
    );
    this.tokensIssued.set(opts.clientId, (this.tokensIssued.get(opts.clientId) ?? 0) + 1);
    return { token, expiresIn: lifetime };
  }

  openIdConfiguration(origin: string, tenant: string): TokenResult {
    const base = `${origin}/${tenant}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        issuer: `${base}/v2.0`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        tenant_region_scope: 'EU',
        cloud_instance_name: 'microsoftonline.com',
      },
    };
  }

  jwks(): TokenResult {
    const jwk = this.publicKey.export({ format: 'jwk' });
    return { status: 200, body: { keys: [{ ...jwk, kid: this.kid, use: 'sig', kty: 'RSA', alg: 'RS256' }] } };
  }

  /** POST /{tenant}/oauth2/v2.0/token with a form body. `endpointUrl` = this request's URL without query. */
  token(tenant: string, form: URLSearchParams, endpointUrl: string): TokenResult {
    if (form.get('grant_type') !== 'client_credentials') {
      return aadError(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    }
    const clientId = form.get('client_id') ?? '';
    const app = this.apps.get(clientId);
    if (app === undefined || app.reg.tenantId !== tenant) {
      return aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`);
    }
    const scope = form.get('scope') ?? '';
    const resource = scope
      .split(' ')
      .find((s) => s.endsWith('/.default'))
      ?.slice(0, -'/.default'.length)
      .replace(/\/$/, '');
    if (resource === undefined || !this.opts.resources.includes(resource)) {
      return aadError(400, 'invalid_scope', 500011, `The resource principal named ${scope} was not found in the tenant named ${tenant}.`);
    }
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (secret !== null) {
      if (!(app.reg.secrets ?? []).some((s) => secretEquals(s, secret))) {
        return aadError(401, 'invalid_client', 7000215, 'Invalid client secret provided.');
      }
    } else if (assertion !== null && form.get('client_assertion_type') === CLIENT_ASSERTION_TYPE) {
      const problem = this.checkAssertion(app, assertion, endpointUrl);
      if (problem !== null) return aadError(401, 'invalid_client', 700027, `Client assertion failed: ${problem}.`);
    } else {
      return aadError(401, 'invalid_client', 7000218, "The request body must contain the parameter 'client_assertion' or 'client_secret'.");
    }
    const issued = this.issueAccessToken({
      tenantId: tenant,
      clientId,
      resource,
      ...(app.reg.tokenLifetimeSec !== undefined ? { lifetimeSec: app.reg.tokenLifetimeSec } : {}),
    });
    return {
      status: 200,
      body: { token_type: 'Bearer', expires_in: issued.expiresIn, ext_expires_in: issued.expiresIn, access_token: issued.token },
    };
  }

  private checkAssertion(app: App, assertion: string, endpointUrl: string): string | null {
    const jwt = decodeJwt(assertion);
    if (jwt === null) return 'not a JWT';
    const x5tS256 = stringClaim(jwt.header, 'x5t#S256');
    const x5t = stringClaim(jwt.header, 'x5t');
    const cert = app.certs.find((c) => (x5tS256 !== undefined && c.x5tS256 === x5tS256) || (x5t !== undefined && c.x5t === x5t));
    if (cert === undefined) return 'no registered certificate matches the thumbprint';
    if (!verifyJwtSignature(jwt, cert.publicKey)) return 'signature invalid';
    const p = jwt.payload;
    if (stringClaim(p, 'iss') !== app.reg.clientId || stringClaim(p, 'sub') !== app.reg.clientId) return 'iss/sub must be the client id';
    const aud = stringClaim(p, 'aud');
    if (aud === undefined || aud.replace(/\/$/, '') !== endpointUrl) return `audience ${String(aud)} is not ${endpointUrl}`;
    const exp = numberClaim(p, 'exp');
    if (exp === undefined || exp * 1000 < Date.now()) return 'expired';
    return null;
  }

  /**
   * Managed identity endpoint (plain HTTP, like the real local endpoints).
   * App Service style: GET <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=..[&client_id=..] with X-IDENTITY-HEADER.
   * Azure Arc style: GET /metadata/identity/oauth2/token?api-version=2019-11-01&resource=.. with Metadata: true;
   * first answer 401 + WWW-Authenticate: Basic realm=<key file>, then accept Authorization: Basic <file content>.
   */
  managedIdentity(url: URL, headers: Record<string, string | string[] | undefined>): TokenResult {
    const resource = (url.searchParams.get('resource') ?? '').replace(/\/$/, '');
    const wanted = url.searchParams.get('client_id') ?? undefined;
    const isArc = url.pathname === '/metadata/identity/oauth2/token';
    if (isArc) {
      if (headers['metadata'] !== 'true')
        return { status: 400, body: { error: 'invalid_request', error_description: 'Required metadata header not specified' } };
      const auth = headers['authorization'];
      const given = typeof auth === 'string' && auth.startsWith('Basic ') ? auth.slice(6).trim() : undefined;
      if (given === undefined || !this.arcSecrets.has(given)) {
        if (this.opts.arcKeyDir === undefined) return { status: 500, body: { error: 'arc flow not configured (arcKeyDir)' } };
        const secret = randomBytes(32).toString('hex');
        const file = join(this.opts.arcKeyDir, `${randomBytes(8).toString('hex')}.key`);
        writeFileSync(file, secret, { mode: 0o600 });
        this.arcSecrets.add(secret);
        return { status: 401, headers: { 'www-authenticate': `Basic realm=${file}` }, body: '' };
      }
      this.arcSecrets.delete(given);
    } else if (headers['x-identity-header'] !== this.identityHeader) {
      return { status: 401, body: { statusCode: 401, message: 'Unauthorized: the X-IDENTITY-HEADER is missing or wrong' } };
    }
    if (!this.opts.resources.includes(resource)) {
      return { status: 400, body: { error: 'invalid_resource', error_description: `AADSTS500011: The resource principal named ${resource} was not found.` } };
    }
    const identity = wanted !== undefined ? this.identities.get(wanted) : [...this.identities.values()].find((i) => i.systemAssigned !== false);
    if (identity === undefined) {
      return { status: 400, body: { error: 'invalid_request', error_description: 'Identity not found' } };
    }
    const issued = this.issueAccessToken({
      tenantId: identity.tenantId,
      clientId: identity.clientId,
      resource,
      ...(identity.tokenLifetimeSec !== undefined ? { lifetimeSec: identity.tokenLifetimeSec } : {}),
    });
    const expiresOn = Math.floor(Date.now() / 1000) + issued.expiresIn;
    return {
      status: 200,
      body: {
        access_token: issued.token,
        expires_on: String(expiresOn),
        expires_in: String(issued.expiresIn),
        resource,
        token_type: 'Bearer',
        client_id: identity.clientId,
      },
    };
  }

  /** Checks an `Authorization: Bearer` header as the ingestion APIs do. */
  validateBearer(authorization: string | undefined, audience = MONITOR_AUDIENCE): BearerVerdict {
    if (authorization === undefined || !/^Bearer\s+/i.test(authorization)) {
      return { ok: false, code: 'AuthenticationFailed', message: 'Authentication failed. The Authorization header is missing or not a Bearer token.' };
    }
    const jwt = decodeJwt(authorization.replace(/^Bearer\s+/i, '').trim());
    if (jwt === null || jwt.header['kid'] !== this.kid || !verifyJwtSignature(jwt, this.publicKey)) {
      return { ok: false, code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' };
    }
    const p = jwt.payload;
    const exp = numberClaim(p, 'exp') ?? 0;
    const issuedMs = numberClaim(p, 'emu_iat_ms') ?? 0;
    if (exp * 1000 <= Date.now() || issuedMs < this.revokedBeforeMs) {
      return { ok: false, code: 'ExpiredAuthenticationToken', message: 'The access token expiry UTC time is earlier than current UTC time.' };
    }
    const aud = (stringClaim(p, 'aud') ?? '').replace(/\/$/, '');
    if (aud !== audience) {
      return { ok: false, code: 'InvalidAuthenticationTokenAudience', message: `The access token has been obtained for wrong audience or resource '${aud}'.` };
    }
    return { ok: true, clientId: stringClaim(p, 'appid') ?? '', tenantId: stringClaim(p, 'tid') ?? '' };
  }
}

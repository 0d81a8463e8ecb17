/**
 * Who is uploading: a gateway-issued API key (bearer token; only its SHA-256 is stored), a client
 * certificate the listener's CA verified (subject or SHA-256 thumbprint), or a Data Collector
 * SharedKey signature made with a workspace key the gateway holds.
 */
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { identityByApiKey, identityByCert, type Identity } from '../routes.js';

/** Checks a Data Collector `Authorization: SharedKey <ws>:<sig>` for one workspace key. */
export type SharedKeyVerifier = (input: {
  authorization: string;
  workspaceId: string;
  key: Buffer;
  contentLength: number;
  contentType: string;
  date: string;
}) => boolean;

export type AuthResult =
  | { readonly ok: true; readonly identity: Identity; readonly via: 'apiKey' | 'clientCert' | 'sharedKey'; readonly workspaceId?: string }
  | { readonly ok: false; readonly why: string };

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const SHARED_KEY = /^SharedKey\s+([^:\s]+):(\S+)\s*$/i;

function peerIdentity(req: IncomingMessage, identities: readonly Identity[]): Identity | null {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const cert = socket.getPeerCertificate();
  if (!cert?.raw) return null;
  const x509 = new X509Certificate(cert.raw);
  return identityByCert(identities, x509.subject, x509.fingerprint256);
}

/** Bearer API key, then client certificate. */
export function authenticateBearerOrCert(req: IncomingMessage, identities: readonly Identity[]): AuthResult {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = BEARER.exec(header);
    if (!m?.[1]) return { ok: false, why: 'unsupported Authorization scheme' };
    const identity = identityByApiKey(identities, m[1]);
    return identity ? { ok: true, identity, via: 'apiKey' } : { ok: false, why: 'unknown API key' };
  }
  const identity = peerIdentity(req, identities);
  return identity ? { ok: true, identity, via: 'clientCert' } : { ok: false, why: 'no credentials' };
}

/** SharedKey (checked against every identity holding that workspace's key), else bearer or certificate. */
export function authenticateDataCollector(
  req: IncomingMessage,
  identities: readonly Identity[],
  verify: SharedKeyVerifier,
  signed: { contentLength: number; contentType: string; date: string },
): AuthResult {
  const header = req.headers.authorization;
  const m = header === undefined ? null : SHARED_KEY.exec(header);
  if (!m || !header) return authenticateBearerOrCert(req, identities);
  const workspaceId = (m[1] ?? '').toLowerCase();
  for (const identity of identities) {
    const sk = identity.sharedKey;
    if (sk === null || sk.workspaceId !== workspaceId) continue;
    if (verify({ authorization: header, workspaceId, key: sk.key, ...signed })) return { ok: true, identity, via: 'sharedKey', workspaceId };
  }
  return { ok: false, why: 'signature does not verify with any workspace key held for this workspace' };
}

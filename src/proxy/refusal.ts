import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { DenyReason } from '../policy/index.js';
import { errorCode, errorMessage, isPortcullisError } from '../util/errors.js';
import { Errors, entryForCode, withDetail, type Refusal } from '../errors/catalogue.js';

export type { Refusal } from '../errors/catalogue.js';

/** The refusal for each policy verdict (a new DenyReason does not compile without its entry). */
const POLICY_REFUSALS: Readonly<Record<DenyReason, Refusal>> = {
  client_denied: Errors.CLIENT_FORBIDDEN,
  host_not_allowed: Errors.TARGET_FORBIDDEN,
  port_not_allowed: Errors.PORT_FORBIDDEN,
  ip_literal: Errors.IP_LITERAL_FORBIDDEN,
  private_address: Errors.PRIVATE_ADDRESS,
};

/** The refusal for a policy decision's reason. */
export function policyRefusal(reason: DenyReason): Refusal {
  return POLICY_REFUSALS[reason];
}

/**
 * A dial or DNS failure (a PortcullisError from src/dial) as the refusal the client sees (502 vs
 * 504) with a bounded reason. Only the catch-all entries carry the error's own text.
 */
export function networkRefusal(err: unknown): Refusal {
  const entry = isPortcullisError(err) ? entryForCode(err.code) : undefined;
  if (entry === Errors.FD_EXHAUSTED) return entry;
  // Relay failures name the relay (host:port) and what it did; never its credentials.
  if (entry === Errors.RELAY_AUTH || entry === Errors.RELAY_UNAVAILABLE || entry === Errors.RELAY_REFUSED) return withDetail(entry, errorMessage(err));
  if (entry !== undefined && entry.kind === 'error' && entry !== Errors.DNS && entry !== Errors.CONNECT) return entry;
  const base = entry === Errors.DNS ? Errors.DNS : Errors.CONNECT;
  return withDetail(base, errorMessage(err));
}

/** A plain-HTTP upstream failure before the response head (undici's codes, or our dialer's). */
export function upstreamRefusal(err: unknown): Refusal {
  if (isPortcullisError(err)) return networkRefusal(err);
  const code = errorCode(err);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return Errors.CONNECT_TIMEOUT;
    case 'ECONNREFUSED':
      return Errors.CONNECT_REFUSED;
    case 'UND_ERR_HEADERS_TIMEOUT':
      return Errors.UPSTREAM_TIMEOUT;
    default:
      return withDetail(Errors.UPSTREAM, code !== undefined && code !== '' ? code : errorMessage(err));
  }
}

function body(r: Refusal): string {
  return JSON.stringify({ error: { code: r.code, reason: r.reason, message: r.message } }) + '\n';
}

/**
 * Answer on a raw socket (CONNECT, or before the HTTP parser has a response object) and close.
 * The socket is destroyed soon after even if the client never reads, so a refusal never holds a
 * file descriptor for long.
 */
/** The Proxy-Authenticate value of a 407 (the realm is checked by the schema: no quote, backslash or line break). */
function authenticate(realm: string): string {
  return `Basic realm="${realm}", charset="UTF-8"`;
}

export function writeRefusal(socket: Socket, r: Refusal, realm = 'portcullis'): void {
  if (socket.destroyed) return;
  const text = body(r);
  const head =
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? 'Error'}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(text)}\r\n` +
    (r.retryAfterS !== undefined ? `Retry-After: ${r.retryAfterS}\r\n` : '') +
    (r.status === 407 ? `Proxy-Authenticate: ${authenticate(realm)}\r\n` : '') +
    'Connection: close\r\n\r\n';
  socket.end(head + text);
  socket.setTimeout(2000, () => socket.destroy());
}

/** Answer through the HTTP server's response object (plain-HTTP path). */
export function sendRefusal(res: ServerResponse, r: Refusal, close = false, realm = 'portcullis'): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body(r);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  };
  if (r.retryAfterS !== undefined) headers['retry-after'] = r.retryAfterS;
  if (r.status === 407) headers['proxy-authenticate'] = authenticate(realm);
  if (close) headers['connection'] = 'close';
  res.writeHead(r.status, headers);
  res.end(text);
}

import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { Events, type EventCode } from '../log/events.js';
import type { Reason } from './access.js';

/** A refusal the proxy answers with an HTTP status, logs with an event code, and counts by reason. */
export interface Refusal {
  status: number;
  reason: Reason;
  event: EventCode;
  code: string;
  message: string;
  retryAfterS?: number;
}

export function refusal(status: number, reason: Reason, event: EventCode, code: string, message: string, retryAfterS?: number): Refusal {
  return retryAfterS === undefined ? { status, reason, event, code, message } : { status, reason, event, code, message, retryAfterS };
}

const REFUSALS: Partial<Record<Reason, Omit<Refusal, 'message'> & { message: string }>> = {
  client_denied: refusal(403, 'client_denied', Events.CLIENT_FORBIDDEN, 'PCL_ERR_CLIENT_FORBIDDEN', 'client address not allowed'),
  host_not_allowed: refusal(403, 'host_not_allowed', Events.TARGET_FORBIDDEN, 'PCL_ERR_TARGET_FORBIDDEN', 'destination host not allowed'),
  port_not_allowed: refusal(403, 'port_not_allowed', Events.TARGET_FORBIDDEN, 'PCL_ERR_PORT_FORBIDDEN', 'destination port not allowed'),
  ip_literal: refusal(403, 'ip_literal', Events.TARGET_FORBIDDEN, 'PCL_ERR_IP_LITERAL_FORBIDDEN', 'IP-literal destinations are not allowed'),
  private_address: refusal(403, 'private_address', Events.TARGET_FORBIDDEN, 'PCL_ERR_PRIVATE_ADDRESS', 'destination resolves to a non-public address'),
  limit_total: refusal(503, 'limit_total', Events.LIMIT_REACHED, 'PCL_ERR_LIMIT_TOTAL', 'too many connections', 1),
  limit_client: refusal(429, 'limit_client', Events.LIMIT_REACHED, 'PCL_ERR_LIMIT_CLIENT', 'too many connections from this client', 1),
  draining: refusal(503, 'draining', Events.LIFECYCLE, 'PCL_ERR_DRAINING', 'gateway is shutting down', 5),
};

/** The standard refusal for a policy or limit reason. */
export function refusalFor(reason: Reason): Refusal {
  const r = REFUSALS[reason];
  if (!r) throw new Error(`no standard refusal for ${reason}`);
  return r;
}

function body(r: Refusal): string {
  return JSON.stringify({ error: { code: r.code, reason: r.reason, message: r.message } }) + '\n';
}

/**
 * Answer on a raw socket (CONNECT, or before the HTTP parser has a response object) and close.
 * The socket is destroyed soon after even if the client never reads, so a refusal never holds a
 * file descriptor for long.
 */
export function writeRefusal(socket: Socket, r: Refusal): void {
  if (socket.destroyed) return;
  const text = body(r);
  const head =
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? 'Error'}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(text)}\r\n` +
    (r.retryAfterS !== undefined ? `Retry-After: ${r.retryAfterS}\r\n` : '') +
    (r.status === 407 ? 'Proxy-Authenticate: Basic realm="portcullis"\r\n' : '') +
    'Connection: close\r\n\r\n';
  socket.end(head + text);
  socket.setTimeout(2000, () => socket.destroy());
}

/** Answer through the HTTP server's response object (plain-HTTP path). */
export function sendRefusal(res: ServerResponse, r: Refusal, close = false): void {
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
  if (close) headers['connection'] = 'close';
  res.writeHead(r.status, headers);
  res.end(text);
}

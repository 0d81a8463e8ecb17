/**
 * CONNECT host:port through one relay (upstream) proxy: TCP to the relay, the CONNECT request
 * (with `Proxy-Authorization: Basic` when the relay has a username), and the relay's response head
 * read strictly: bounded in size, within the connect deadline, a status line `HTTP/1.x NNN`. A 2xx
 * answer leaves a socket ready for tunnel bytes; anything the relay sent after its head already
 * belongs to the tunnel and is put back on the socket.
 */
import net, { type Socket } from 'node:net';
import { errorCode } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';
import { stopReading } from '../util/socket.js';

/** One configured relay, ready to use: never logged whole (`auth` holds the credentials). */
export interface RelayEndpoint {
  /** host:port: how logs, metrics and messages name the relay. */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** The Proxy-Authorization value (`Basic ...`), or null without a username. */
  readonly auth: string | null;
}

/** Why a relay did not give us a tunnel; the metrics label of portcullis_upstream_proxy_failures_total. */
export type RelayFailureReason = 'connect_refused' | 'connect_timeout' | 'connect_error' | 'auth' | 'status' | 'answer_timeout' | 'bad_response' | 'closed';

/**
 * Failures that say nothing against the relay itself: it is reachable and speaks HTTP, but would
 * not open this tunnel (an error status: the destination unreachable from it, or refused by its
 * rules; no answer in time: a relay answers CONNECT only once it reached the destination). These
 * must not mark it down, or one client asking for an unreachable name would take every relay out
 * for everyone. A 407 is our credentials.
 */
export function relayStaysUp(reason: RelayFailureReason): boolean {
  return reason === 'auth' || reason === 'status' || reason === 'answer_timeout';
}

/** A relay failed: `reason` is bounded, `message` names the relay by host:port and never the credentials. */
export class RelayFailure extends Error {
  constructor(
    readonly relay: string,
    readonly reason: RelayFailureReason,
    message: string,
    /** The relay's status, when it answered one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RelayFailure';
  }
}

/** A relay's answer to CONNECT larger than this is not an answer we read. */
export const MAX_RELAY_HEAD_BYTES = 16 * 1024;

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;

/** `Basic base64(user:password)` (RFC 7617). */
export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** The CONNECT request for `host:port` (IPv6 in brackets). */
export function connectRequest(host: string, port: number, auth: string | null): string {
  const authority = hostPort(host, port);
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth === null ? '' : `Proxy-Authorization: ${auth}\r\n`}\r\n`;
}

/**
 * Reads the status code out of a complete response head (`head` ends before the blank line), or
 * null when the status line is not one.
 */
export function parseRelayStatus(head: string): number | null {
  const eol = head.indexOf('\r\n');
  const m = STATUS_LINE.exec(eol < 0 ? head : head.slice(0, eol));
  return m ? Number(m[1]) : null;
}

function connectFailure(relay: RelayEndpoint, err: NodeJS.ErrnoException): RelayFailure {
  const code = errorCode(err) ?? 'UNKNOWN';
  if (code === 'ECONNREFUSED') return new RelayFailure(relay.label, 'connect_refused', `relay proxy ${relay.label} refused the connection`);
  if (code === 'ETIMEDOUT') return new RelayFailure(relay.label, 'connect_timeout', `relay proxy ${relay.label}: connect timed out (${code})`);
  return new RelayFailure(relay.label, 'connect_error', `relay proxy ${relay.label}: connect failed (${code})`);
}

/**
 * A socket tunnelled through `relay` to host:port, paused, with any bytes the relay sent after its
 * 2xx head unshifted onto it. Rejects with a RelayFailure; the socket is destroyed then.
 */
export function connectThroughRelay(relay: RelayEndpoint, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const socket = net.connect({ host: relay.host, port: relay.port, allowHalfOpen: true, noDelay: true });
  return relayHandshake(socket, relay, host, port, timeoutMs);
}

/**
 * The CONNECT exchange on a socket to `relay` (connected, or still connecting: connect errors are
 * reported as the relay's), within `timeoutMs`. `portcullis doctor` times the TCP connect and this
 * exchange apart.
 */
export function relayHandshake(socket: Socket, relay: RelayEndpoint, host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    let settled = false;
    let head: Buffer = Buffer.alloc(0);
    const finish = (err: RelayFailure | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('connect', onConnect);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      if (err) {
        socket.on('error', noop);
        socket.destroy();
        reject(err);
      } else resolve(socket);
    };
    const onConnect = (): void => {
      socket.write(connectRequest(host, port, relay.auth));
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if ((end < 0 && head.length > MAX_RELAY_HEAD_BYTES) || end > MAX_RELAY_HEAD_BYTES) {
        finish(new RelayFailure(relay.label, 'bad_response', `relay proxy ${relay.label}: answer head over ${MAX_RELAY_HEAD_BYTES} bytes`));
        return;
      }
      if (end < 0) return;
      const status = parseRelayStatus(head.subarray(0, end).toString('latin1'));
      if (status === null) {
        finish(new RelayFailure(relay.label, 'bad_response', `relay proxy ${relay.label}: not an HTTP/1.x answer to CONNECT`));
        return;
      }
      if (status === 407) {
        finish(new RelayFailure(relay.label, 'auth', `relay proxy ${relay.label} refused the credentials (407)`, status));
        return;
      }
      if (status < 200 || status > 299) {
        finish(new RelayFailure(relay.label, 'status', `relay proxy ${relay.label} answered ${status} to CONNECT ${hostPort(host, port)}`, status));
        return;
      }
      stopReading(socket);
      const rest = head.subarray(end + 4);
      // Bytes after the head are the destination's: they stay in front of everything else.
      if (rest.length > 0) socket.unshift(rest);
      finish(null);
    };
    const onEnd = (): void => finish(new RelayFailure(relay.label, 'closed', `relay proxy ${relay.label} closed the connection before answering CONNECT`));
    const onError = (err: NodeJS.ErrnoException): void => finish(connectFailure(relay, err));
    const timer = setTimeout(
      () =>
        finish(
          socket.connecting
            ? new RelayFailure(relay.label, 'connect_timeout', `relay proxy ${relay.label}: connect timed out after ${timeoutMs} ms`)
            : new RelayFailure(
                relay.label,
                'answer_timeout',
                `relay proxy ${relay.label}: no answer to CONNECT ${hostPort(host, port)} within ${timeoutMs} ms`,
              ),
        ),
      timeoutMs,
    );
    if (socket.connecting) socket.on('connect', onConnect);
    else onConnect();
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  });
}

function noop(): void {}

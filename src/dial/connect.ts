import net from 'node:net';
import type { Socket } from 'node:net';
import { errorCode, PortcullisError } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';
import type { ResolvedAddress } from './resolver.js';

export interface DialOptions {
  /** TCP connect timeout per address. */
  timeoutMs: number;
  /** Keep the socket writable after the peer's FIN (tunnels pass half-close on). Default true. */
  allowHalfOpen?: boolean;
}

interface DialState {
  readonly resolve: (socket: Socket) => void;
  readonly reject: (err: PortcullisError) => void;
  readonly timer: NodeJS.Timeout;
  readonly address: ResolvedAddress;
  readonly port: number;
  readonly timeoutMs: number;
}

// Per-dial state rides on the socket so the handlers below are shared module functions, not
// closures allocated for every tunnel.
const kDial = Symbol('portcullis.dial');
type DialSocket = Socket & { [kDial]?: DialState | undefined };

function noop(): void {}

function endpoint(address: ResolvedAddress, port: number): string {
  return hostPort(address.address, port);
}

function detach(socket: DialSocket): DialState | undefined {
  const state = socket[kDial];
  if (state === undefined) return undefined;
  socket[kDial] = undefined;
  clearTimeout(state.timer);
  socket.removeListener('connect', onConnect);
  socket.removeListener('error', onError);
  return state;
}

function fail(socket: DialSocket, err: PortcullisError): void {
  const state = detach(socket);
  if (state === undefined) return;
  // Destroyed without an error argument, so no further 'error' should come; the no-op guards
  // against a late one crashing the process.
  socket.on('error', noop);
  socket.destroy();
  state.reject(err);
}

function onConnect(this: DialSocket): void {
  const state = detach(this);
  if (state !== undefined) state.resolve(this);
}

function onError(this: DialSocket, err: NodeJS.ErrnoException): void {
  const state = this[kDial];
  if (state === undefined) return;
  fail(this, mapConnectError(err, state.address, state.port));
}

function onTimeout(socket: DialSocket): void {
  const state = socket[kDial];
  if (state === undefined) return;
  fail(socket, new PortcullisError('PCL_ERR_CONNECT_TIMEOUT', `connect to ${endpoint(state.address, state.port)} timed out after ${state.timeoutMs} ms`));
}

function mapConnectError(err: NodeJS.ErrnoException, address: ResolvedAddress, port: number): PortcullisError {
  const code = err.code ?? 'UNKNOWN';
  const where = endpoint(address, port);
  switch (code) {
    case 'ECONNREFUSED':
      return new PortcullisError('PCL_ERR_CONNECT_REFUSED', `connect to ${where} refused`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new PortcullisError('PCL_ERR_CONNECT_UNREACHABLE', `connect to ${where}: unreachable (${code})`, { cause: err });
    case 'EMFILE':
    case 'ENFILE':
      // This process (or the host) is out of descriptors: not the destination's fault, and worth a retry.
      return new PortcullisError('PCL_ERR_FD_EXHAUSTED', `connect to ${where}: out of file descriptors (${code})`, { cause: err });
    case 'ETIMEDOUT':
      // The kernel gave up on SYN retries before our timer: same meaning for the caller.
      return new PortcullisError('PCL_ERR_CONNECT_TIMEOUT', `connect to ${where} timed out (${code})`, { cause: err });
    default:
      return new PortcullisError('PCL_ERR_CONNECT', `connect to ${where} failed (${code})`, { cause: err });
  }
}

/**
 * Connects to a vetted IP (never a name, so there is no DNS-rebinding gap between the policy
 * check and the connect). Resolves once connected with none of our listeners left on the socket.
 */
export function dial(address: ResolvedAddress, port: number, opts: DialOptions): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    let socket: DialSocket;
    try {
      socket = net.connect({
        host: address.address,
        port,
        family: address.family,
        allowHalfOpen: opts.allowHalfOpen ?? true,
        // Nagle + delayed ACK costs ~40 ms per small upload through a tunnel.
        noDelay: true,
      });
    } catch (err) {
      // Synchronous argument errors, e.g. ERR_SOCKET_BAD_PORT.
      const code = errorCode(err) ?? 'EINVAL';
      reject(new PortcullisError('PCL_ERR_CONNECT', `connect to ${endpoint(address, port)} failed (${code})`, { cause: err }));
      return;
    }
    socket[kDial] = {
      resolve,
      reject,
      timer: setTimeout(onTimeout, opts.timeoutMs, socket),
      address,
      port,
      timeoutMs: opts.timeoutMs,
    };
    socket.on('connect', onConnect);
    socket.on('error', onError);
  });
}

/**
 * Tries the (already vetted) addresses in order, each with the full connect timeout, and returns
 * the first that connects; rejects with the last error.
 */
export async function dialFirst(addresses: readonly ResolvedAddress[], port: number, opts: DialOptions): Promise<{ socket: Socket; address: ResolvedAddress }> {
  // Build the "no addresses" error only when needed: an Error captures a stack trace, which
  // showed up at 2% of a tunnel's set-up cost in profiles.
  if (addresses.length === 0) throw new PortcullisError('PCL_ERR_CONNECT', `no addresses to connect to on port ${port}`);
  let lastErr: unknown;
  for (const address of addresses) {
    try {
      const socket = await dial(address, port, opts);
      return { socket, address };
    } catch (err) {
      // Out of descriptors: the next address would fail the same way.
      if (err instanceof PortcullisError && err.code === 'PCL_ERR_FD_EXHAUSTED') throw err;
      lastErr = err;
    }
  }
  throw lastErr;
}

import { PortcullisError } from '../util/errors.js';
import { hostPort } from '../util/host-port.js';

export const SERVICE_START_ERROR_CODE = 'PCL_ERR_SERVICE_START';

/**
 * A service could not start. The message is the one line an operator reads:
 * `<configKey>: <cause>`, e.g. "proxy.listen: address 0.0.0.0:8080 already in use (EADDRINUSE)".
 * `cause` is a human sentence, not the underlying Error (that goes to `error`).
 */
export class ServiceStartError extends PortcullisError {
  override readonly cause: string;

  constructor(
    readonly configKey: string,
    cause: string,
    readonly error?: unknown,
  ) {
    super(SERVICE_START_ERROR_CODE, `${configKey}: ${cause}`);
    this.name = 'ServiceStartError';
    this.cause = cause;
  }
}

function errno(err: unknown): { code: string; message: string; address?: string; port?: number } {
  const e: { code?: unknown; message?: unknown; address?: unknown; port?: unknown } = typeof err === 'object' && err !== null ? err : {};
  return {
    code: typeof e.code === 'string' ? e.code : '',
    message: typeof e.message === 'string' ? e.message : String(err),
    ...(typeof e.address === 'string' ? { address: e.address } : {}),
    ...(typeof e.port === 'number' ? { port: e.port } : {}),
  };
}

/**
 * A listen() failure as the sentence that says what to do about it. `configured` is the address
 * from the config (the error's own address, when Node gives one, is what was actually tried).
 */
export function listenStartError(configKey: string, configured: { host: string; port: number }, err: unknown): ServiceStartError {
  const e = errno(err);
  const host = e.address ?? configured.host;
  const port = e.port ?? configured.port;
  const at = hostPort(host, port);
  switch (e.code) {
    case 'EADDRINUSE':
      return new ServiceStartError(configKey, `address ${at} already in use (EADDRINUSE)`, err);
    case 'EACCES':
      return new ServiceStartError(
        configKey,
        port > 0 && port < 1024
          ? `permission denied binding ${at} (EACCES): ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)`
          : `permission denied binding ${at} (EACCES)`,
        err,
      );
    case 'EADDRNOTAVAIL':
      return new ServiceStartError(configKey, `address ${at} is not an address of this host (EADDRNOTAVAIL)`, err);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ServiceStartError(configKey, `cannot resolve host ${configured.host} (${e.code})`, err);
    default:
      return new ServiceStartError(configKey, `cannot listen on ${at}: ${e.message}`, err);
  }
}

/** Anything a start() threw, as a ServiceStartError (an unexpected error still names its service). */
export function asServiceStartError(configKey: string, err: unknown): ServiceStartError {
  if (err instanceof ServiceStartError) return err;
  return new ServiceStartError(configKey, `could not start: ${errno(err).message}`, err);
}

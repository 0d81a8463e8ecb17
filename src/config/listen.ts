import ipaddr from 'ipaddr.js';
import { PortcullisError } from '../util/errors.js';
import { CONFIG_ERROR_CODE } from './errors.js';

export interface ListenAddress {
  /** Ready for `net.Server.listen`: IPv6 without brackets. */
  host: string;
  port: number;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * `0.0.0.0:8080`, `[::1]:8080`, `localhost:8080`, `:8080` (all IPv4 interfaces); port 0 = any free port.
 * Throws PortcullisError PCL_ERR_CONFIG with a message that says what is wrong.
 */
export function parseListenAddress(s: string): ListenAddress {
  const fail = (why: string): never => {
    throw new PortcullisError(CONFIG_ERROR_CODE, `invalid listen address ${JSON.stringify(s)}: ${why}`);
  };
  if (typeof s !== 'string' || s.trim() === '') return fail('expected host:port');
  const text = s.trim();
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return fail('missing "]" after the IPv6 address');
    host = text.slice(1, close);
    if (text[close + 1] !== ':') return fail('expected ":port" after "]"');
    portText = text.slice(close + 2);
    if (!ipaddr.IPv6.isValid(host) || host.includes('%')) return fail(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail('missing ":port"');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return fail('put IPv6 addresses in brackets, e.g. "[::]:8080"');
    if (host === '') host = '0.0.0.0';
    else if (/^[\d.]+$/.test(host)) {
      // ipaddr.js also takes "10.1" or octal forms; listen addresses must be plain dotted quads.
      if (!ipaddr.IPv4.isValidFourPartDecimal(host)) return fail(`"${host}" is not an IPv4 address`);
    } else if (!HOST_NAME.test(host)) return fail(`"${host}" is not a host name or IP address`);
  }
  // Port 0 asks the kernel for any free port: for tests and ad-hoc runs (the bound port is logged).
  if (!/^\d{1,5}$/.test(portText)) return fail('port must be a number from 0 to 65535');
  const port = Number(portText);
  if (port > 65535) return fail('port must be a number from 0 to 65535');
  return { host, port };
}

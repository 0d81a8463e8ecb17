import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { ProxyTlsConfig } from '../config/types.js';
import { PortcullisError, errorMessage } from '../util/errors.js';

/** What a TLS proxy listener is built (and on reload rebuilt) from. */
export interface TlsListenerOptions {
  /** Certificate, key, client CA: checked by building a context once, then handed to the server (and setSecureContext on reload). */
  contextOptions: tls.SecureContextOptions;
  /** Ask clients for a certificate (proxy.tls.clientCaFile is set). */
  requestCert: boolean;
  requireClientCert: boolean;
}

function read(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new PortcullisError('PCL_ERR_PROXY_TLS_FILE', `cannot read proxy.tls.${key} ${file}: ${errorMessage(err)}`);
  }
}

/** Read proxy.tls's certificate, key and client CA: throws PCL_ERR_PROXY_TLS_FILE naming the key and file. */
export function loadTlsOptions(config: ProxyTlsConfig): TlsListenerOptions {
  const cert = read('certFile', config.certFile);
  const key = read('keyFile', config.keyFile);
  const ca = config.clientCaFile !== undefined ? read('clientCaFile', config.clientCaFile) : undefined;
  const contextOptions: tls.SecureContextOptions = { cert, key, ...(ca !== undefined ? { ca } : {}), minVersion: 'TLSv1.2' };
  try {
    tls.createSecureContext(contextOptions);
  } catch (err) {
    throw new PortcullisError('PCL_ERR_PROXY_TLS_FILE', `proxy.tls: certificate, key or CA not usable: ${errorMessage(err)}`);
  }
  return { contextOptions, requestCert: ca !== undefined, requireClientCert: config.requireClientCert };
}

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listenStartError, ServiceStartError, SERVICE_START_ERROR_CODE } from '../../src/gateway/errors.js';
import { AdminListener } from '../../src/admin/server.js';
import { createLogger } from '../../src/log/logger.js';
import { idleAdminHooks } from '../helpers/admin.js';

function errnoError(code: string, address?: string, port?: number): NodeJS.ErrnoException & { address?: string; port?: number } {
  return Object.assign(new Error(`listen ${code}`), { code, ...(address ? { address } : {}), ...(port !== undefined ? { port } : {}) });
}

describe('listenStartError: the one line an operator reads', () => {
  it('address in use names the key, the address and the errno', () => {
    const e = listenStartError('proxy.listen', { host: '0.0.0.0', port: 8080 }, errnoError('EADDRINUSE', '0.0.0.0', 8080));
    expect(e).toBeInstanceOf(ServiceStartError);
    expect(e.code).toBe(SERVICE_START_ERROR_CODE);
    expect(e.configKey).toBe('proxy.listen');
    expect(e.message).toBe('proxy.listen: address 0.0.0.0:8080 already in use (EADDRINUSE)');
  });

  it('permission denied below 1024 says what grants it', () => {
    const e = listenStartError('proxy.listen', { host: '0.0.0.0', port: 443 }, errnoError('EACCES'));
    expect(e.cause).toMatch(/^permission denied binding 0\.0\.0\.0:443 \(EACCES\)/);
    expect(e.cause).toContain('CAP_NET_BIND_SERVICE');
  });

  it('permission denied on a high port does not blame the capability', () => {
    const e = listenStartError('admin.listen', { host: '::1', port: 9464 }, errnoError('EACCES'));
    expect(e.message).toBe('admin.listen: permission denied binding [::1]:9464 (EACCES)');
  });

  it('an address this host does not have', () => {
    const e = listenStartError('proxy.listen', { host: '10.9.9.9', port: 8080 }, errnoError('EADDRNOTAVAIL'));
    expect(e.message).toBe('proxy.listen: address 10.9.9.9:8080 is not an address of this host (EADDRNOTAVAIL)');
  });
});

describe('admin.tls: a bad certificate names its file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-tls-'));
  const { logger } = createLogger({ level: 'silent' });
  const hooks = idleAdminHooks();
  const startWith = async (tls: { certFile: string; keyFile: string }): Promise<ServiceStartError> => {
    const admin = new AdminListener({ listen: '127.0.0.1:0', metrics: true, tls }, hooks, logger);
    const err: unknown = await admin.start().then(
      () => admin.drain(),
      (e: unknown) => e,
    );
    if (!(err instanceof ServiceStartError)) throw new Error(`expected a ServiceStartError, got ${String(err)}`);
    return err;
  };

  it('a certificate file that is not PEM', async () => {
    const certFile = join(dir, 'cert.pem');
    writeFileSync(certFile, 'not a certificate\n');
    const err = await startWith({ certFile, keyFile: certFile });
    expect(err.configKey).toBe('admin.tls.certFile');
    expect(err.message).toContain(`${certFile} is not a usable PEM certificate`);
  });

  it('a key file that cannot be read', async () => {
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'missing-key.pem');
    writeFileSync(certFile, 'not a certificate\n');
    const err = await startWith({ certFile, keyFile });
    expect(err.message).toBe(`admin.tls.keyFile: cannot read the private key file ${keyFile} (ENOENT)`);
  });
});

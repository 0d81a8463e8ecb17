import { accessSync, constants } from 'node:fs';
import { errorCode } from '../util/errors.js';
import type { SemanticCheck } from './load.js';

/** Whether the native tunnel relay can run here, and if not, why; found out by the caller. */
export interface NativeRelayFact {
  available: boolean;
  reason: string;
}

/**
 * `proxy.relay: native` is a promise the start-up must keep or refuse. The gateway passes what it
 * found loading the addon; the CLI and the config store pass what they see without loading it
 * (src/relay/probe.ts), so editing a file never loads native code.
 */
export function nativeRelayCheck(fact: NativeRelayFact): SemanticCheck {
  return (config) => {
    if (config.proxy?.relay !== 'native' || fact.available) return [];
    return [{ path: ['proxy', 'relay'], message: `native relay not available here (${fact.reason}); build it with npm run build, or use auto` }];
  };
}

/**
 * The files client identity is read from (proxy.auth.htpasswdFile, proxy.tls's certificate, key and
 * CA) can be read here. Run by the loader of the process that validates a reload (the cluster
 * supervisor reads none of them itself) and by check-config, so a missing file is refused with
 * its key path before any worker tries it.
 */
export const identityFilesCheck: SemanticCheck = (config) => {
  const files: Array<{ path: Array<string | number>; file: string | undefined }> = [
    { path: ['proxy', 'auth', 'htpasswdFile'], file: config.proxy?.auth?.htpasswdFile },
    { path: ['proxy', 'tls', 'certFile'], file: config.proxy?.tls?.certFile },
    { path: ['proxy', 'tls', 'keyFile'], file: config.proxy?.tls?.keyFile },
    { path: ['proxy', 'tls', 'clientCaFile'], file: config.proxy?.tls?.clientCaFile },
  ];
  const issues: Array<{ path: Array<string | number>; message: string }> = [];
  for (const { path, file } of files) {
    if (file === undefined) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      issues.push({ path, message: `cannot read ${file} (${errorCode(err) ?? 'error'})` });
    }
  }
  return issues;
};

/**
 * forwarder/: agents and scripts upload to the gateway (Logs Ingestion API and HTTP Data Collector
 * API shapes); records are spooled durably, batched, compressed in a worker pool and forwarded to
 * Azure Monitor. The public surface: the service, its config check, and the pieces tests drive.
 */
import type { Registry } from 'prom-client';
import type { PortcullisConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Spool } from './spool/index.js';
import { signDataCollectorRequest, verifySharedKey } from './upstream/shared-key.js';
import type { SharedKeyVerifier } from './ingest/auth.js';
import { ForwarderService, type ForwarderServiceOptions } from './service.js';
import type { DataCollectorSigner } from './upstream/sender.js';

export { ForwarderService, type ForwarderServiceOptions, type SpoolOpenOptions, type RecordIntake } from './service.js';
export { forwarderConfigCheck, compileForwarder, streamKey, parseStreamKey, sha256 } from './routes.js';
export { nativeJsonStatus } from './pool/json-native.js';
export { nativeDeflateStatus } from './pool/gzip.js';
export type { TokenSource, DataCollectorSigner } from './upstream/sender.js';
export type { SharedKeyVerifier } from './ingest/auth.js';
export { ForwarderErrors } from '../errors/catalogue.js';
export { isPortcullisError } from '../util/errors.js';
export { ServiceStartError } from '../gateway/errors.js';
export type { Service, Readiness } from '../gateway/service.js';

/** The ingest's check of a Data Collector signature against one workspace key (shared-key.ts). */
export const verifyWithWorkspaceKey: SharedKeyVerifier = (input) => {
  const verdict = verifySharedKey({
    authorization: input.authorization,
    date: input.date,
    contentType: input.contentType,
    contentLength: input.contentLength,
    keysFor: (ws) => (ws.toLowerCase() === input.workspaceId ? [input.key] : undefined),
    // The ingest bounds the skew itself (forwarder.limits.clockSkewMs) before it gets here.
    maxClockSkewMs: Number.MAX_SAFE_INTEGER,
  });
  return verdict.ok;
};

export const signWithWorkspaceKey: DataCollectorSigner = (o) =>
  signDataCollectorRequest({
    workspaceId: o.workspaceId,
    sharedKey: o.sharedKey,
    body: o.body,
    logType: o.logType,
    ...(o.timeGeneratedField !== undefined ? { timeGeneratedField: o.timeGeneratedField } : {}),
  });

/** The service with the real spool, SharedKey code and Entra token provider (tokenSource: tests). */
export function createForwarderService(
  config: PortcullisConfig,
  logger: Logger,
  registry: Registry | null,
  opts: { tokenSource?: ForwarderServiceOptions['tokenSource']; env?: Record<string, string | undefined> } = {},
): ForwarderService {
  return new ForwarderService({
    config,
    logger,
    registry,
    openSpool: (o) => Spool.open(o),
    ...(opts.tokenSource ? { tokenSource: opts.tokenSource } : {}),
    sign: signWithWorkspaceKey,
    verify: verifyWithWorkspaceKey,
    env: opts.env ?? process.env,
  });
}

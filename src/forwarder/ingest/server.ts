/**
 * The ingest listener (fastify): the Logs Ingestion API and the HTTP Data Collector API in the
 * real services' shapes, status codes and error bodies. An upload is answered with success only
 * once its records are in the spool.
 *
 * upload -> auth -> route -> headers -> body (streamed, bounded, idle timeout) -> pool.decode ->
 * spool.append -> 204 (Logs Ingestion) / 200 (Data Collector)
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ForwarderConfig } from '../../config/types.js';
import { parseListenAddress } from '../../config/listen.js';
import type { Logger } from '../../log/logger.js';
import { Events } from '../../log/events.js';
import { isPortcullisError } from '../../util/errors.js';
import { likelySealed, sealedRecords, type ForwarderPool, type DecodeError, type DecodeMode } from '../pool/index.js';
import type { SpoolPort } from '../spool-port.js';
import type { ForwarderMetrics } from '../metrics.js';
import { LOGS_INGESTION_MAX_BYTES, streamKey, type CompiledForwarder, type Identity, type Route } from '../routes.js';
import { ForwarderErrors } from '../../errors/catalogue.js';
import { DC, LI, dcBody, liBody, type ForwarderRefusal } from './answers.js';
import { authenticateBearerOrCert, authenticateDataCollector, type AuthResult, type SharedKeyVerifier } from './auth.js';
import { readBody } from './body.js';

export const LI_API_VERSIONS = new Set(['2023-01-01', '2021-11-01-preview']);
export const DC_API_VERSION = '2016-04-01';
const LOG_TYPE = /^[A-Za-z0-9_]{1,100}$/;
/** How often the memory check re-reads the resident set size. */
const RSS_SAMPLE_MS = 50;

type Api = 'logs_ingestion' | 'data_collector';

export interface IngestDeps {
  config: () => ForwarderConfig;
  routes: () => CompiledForwarder;
  pool: ForwarderPool;
  spool: SpoolPort;
  metrics: ForwarderMetrics | null;
  logger: Logger;
  verifySharedKey: SharedKeyVerifier;
  /** True while draining: new uploads get 503. */
  draining: () => boolean;
  /** Called when an upload is refused for lack of room (spool full, memory short): readiness goes red for a while. */
  shed: (reason: 'spool_full' | 'memory') => void;
}

export interface IngestServer {
  readonly app: FastifyInstance;
  /** host:port actually bound. */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

function contentTypeIsJson(ct: string | undefined): boolean {
  return ct !== undefined && /^application\/json\s*(;|$)/i.test(ct.trim());
}

/**
 * A gzip upload is sent upstream as it came when it holds at least half an upstream request:
 * batching it with others would save at most one request in two, and re-compressing it costs
 * more CPU than everything else the gateway does with it (measured in docs/benchmarks.md).
 */
function sealSizes(batchMaxBytes: number): { minBytes: number; maxBytes: number } {
  const maxBytes = Math.min(batchMaxBytes, LOGS_INGESTION_MAX_BYTES);
  return { minBytes: Math.floor(maxBytes / 2), maxBytes };
}

/** Logs Ingestion decode errors -> answers; the Data Collector API names them differently. */
const LI_DECODE: Record<DecodeError, ForwarderRefusal> = {
  badGzip: LI.badGzip,
  tooLarge: LI.tooLarge,
  badJson: LI.badJson,
  notArray: LI.notArray,
  recordTooLarge: LI.recordTooLarge,
};
const DC_DECODE: Record<DecodeError, ForwarderRefusal> = {
  badGzip: DC.badGzip,
  tooLarge: DC.tooLarge,
  badJson: DC.badData,
  notArray: DC.badData,
  recordTooLarge: DC.recordTooLarge,
};

export async function startIngest(deps: IngestDeps): Promise<IngestServer> {
  const cfg = deps.config();
  const https = cfg.plaintext
    ? null
    : {
        cert: readFileSync(cfg.tls?.certFile ?? ''),
        key: readFileSync(cfg.tls?.keyFile ?? ''),
        minVersion: 'TLSv1.2' as const,
        ...(cfg.tls?.clientCaFile
          ? // Ask for a certificate but let clients without one in: they may use an API key.
            // Only `socket.authorized` certificates count (auth.ts).
            { ca: readFileSync(cfg.tls.clientCaFile), requestCert: true, rejectUnauthorized: false }
          : {}),
      };
  const app = Fastify({
    logger: false,
    https,
    // Body limits are enforced by readBody while streaming; fastify never buffers a body here.
    bodyLimit: 1,
    keepAliveTimeout: 65_000,
    requestTimeout: 0,
    return503OnClosing: true,
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  // Hand the raw stream to the route: readBody reads it under our limits.
  app.addContentTypeParser('*', (_req: FastifyRequest, _payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) => done(null));

  const handler = new IngestHandler(deps);
  app.post('/dataCollectionRules/:dcrId/streams/:stream', (req, reply) =>
    handler.logsIngestion(req as FastifyRequest<{ Params: { dcrId: string; stream: string } }>, reply),
  );
  app.post('/api/logs', (req, reply) => handler.dataCollector(req, reply));
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .header('content-type', 'application/json')
      .send(JSON.stringify({ error: { code: 'NotFound', message: `no such API: ${req.method} ${req.url.split('?')[0] ?? ''}` } }));
  });
  app.setErrorHandler((err, _req, reply) => {
    deps.logger.error({ event: Events.INTERNAL_ERROR, err }, 'forwarder ingest: unexpected error');
    if (!reply.sent) void reply.code(500).header('content-type', 'application/json').send(liBody(LI.internal));
  });
  app.server.on('clientError', (_err, socket) => socket.destroy());

  const listen = parseListenAddress(cfg.listen);
  await app.listen({ host: listen.host, port: listen.port });
  const addr = app.server.address();
  const address = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : { host: listen.host, port: listen.port };
  if (cfg.plaintext) {
    deps.logger.warn(
      { event: Events.FWD_PLAINTEXT, listen: address },
      'forwarder ingest listener serves PLAINTEXT HTTP (forwarder.plaintext: true): API keys and records cross the network unencrypted',
    );
  }
  return { app, address, close: () => app.close() };
}

interface AcceptOptions {
  gzip: boolean;
  mode: DecodeMode;
  timeGeneratedField: string;
  maxBytes: number;
  table: typeof LI | typeof DC;
  decodeTable: Record<DecodeError, ForwarderRefusal>;
  body: (x: ForwarderRefusal) => string;
  successStatus: number;
}

class IngestHandler {
  /** Body bytes of uploads between reading and their answer (memory held by the pipeline). */
  #inflightBytes = 0;
  #rssValue = 0;
  #rssAt = 0;

  /**
   * Resident memory, read at most every RSS_SAMPLE_MS: process.memoryUsage.rss() reads
   * /proc/self/stat (tens of microseconds), too much for every upload; memory does not move
   * faster than that matters here.
   */
  #rss(): number {
    const now = performance.now();
    if (now - this.#rssAt >= RSS_SAMPLE_MS) {
      this.#rssValue = process.memoryUsage.rss();
      this.#rssAt = now;
    }
    return this.#rssValue;
  }

  constructor(private readonly deps: IngestDeps) {}

  async logsIngestion(req: FastifyRequest<{ Params: { dcrId: string; stream: string } }>, reply: FastifyReply): Promise<void> {
    const t0 = performance.now();
    const api: Api = 'logs_ingestion';
    const refuse = (x: ForwarderRefusal, detail?: string, fields?: Record<string, unknown>): void => this.refuse(api, reply, x, liBody(x), detail, fields);
    if (this.deps.draining()) return refuse(LI.draining);
    const version = (req.query as Record<string, unknown>)['api-version'];
    if (typeof version !== 'string' || !LI_API_VERSIONS.has(version)) return refuse(LI.badApiVersion);

    const compiled = this.deps.routes();
    const auth = authenticateBearerOrCert(req.raw, compiled.identities);
    if (!auth.ok) {
      void reply.header('www-authenticate', 'Bearer');
      return refuse(LI.unauthorized, auth.why);
    }
    const { dcrId, stream } = req.params;
    const route = compiled.liRoutes.get(`${dcrId}\u0000${stream}`);
    if (!route) return refuse(auth.identity.routes.size > 0 ? LI.unknownRoute : LI.forbidden, undefined, { identity: auth.identity.name });
    if (!auth.identity.routes.has(route.name)) return refuse(LI.forbidden, undefined, { identity: auth.identity.name, route: route.name });

    if (!contentTypeIsJson(req.headers['content-type'])) return refuse(LI.badContentType);
    const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'gzip' && encoding !== 'identity') return refuse(LI.badEncoding);

    await this.accept(api, req.raw, reply, t0, auth.identity, route, {
      gzip: encoding === 'gzip',
      mode: 'logsIngestion',
      timeGeneratedField: '',
      maxBytes: this.deps.config().limits.logsIngestionBytes,
      table: LI,
      decodeTable: LI_DECODE,
      body: liBody,
      successStatus: 204,
    });
  }

  async dataCollector(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const t0 = performance.now();
    const api: Api = 'data_collector';
    const refuse = (x: ForwarderRefusal, detail?: string, fields?: Record<string, unknown>): void => this.refuse(api, reply, x, dcBody(x), detail, fields);
    if (this.deps.draining()) return refuse(DC.draining);
    const version = (req.query as Record<string, unknown>)['api-version'];
    if (version === undefined) return refuse(DC.missingApiVersion);
    if (version !== DC_API_VERSION) return refuse(DC.badApiVersion);

    const cfg = this.deps.config();
    const contentType = req.headers['content-type'];
    const date = req.headers['x-ms-date'];
    const dateText = typeof date === 'string' ? date : '';
    const when = Date.parse(dateText);
    if (!dateText || Number.isNaN(when) || Math.abs(Date.now() - when) > cfg.limits.clockSkewMs) return refuse(DC.badDate);
    // The SharedKey signature covers Content-Length: chunked uploads cannot be signed.
    const contentLength = Number(req.headers['content-length'] ?? NaN);
    const compiled = this.deps.routes();
    const auth: AuthResult = authenticateDataCollector(req.raw, compiled.identities, this.deps.verifySharedKey, {
      contentLength: Number.isFinite(contentLength) ? contentLength : -1,
      contentType: typeof contentType === 'string' ? contentType : '',
      date: dateText,
    });
    if (!auth.ok) return refuse(DC.unauthorized, auth.why);

    const logType = req.headers['log-type'];
    if (typeof logType !== 'string' || logType === '') return refuse(DC.missingLogType);
    if (!LOG_TYPE.test(logType)) return refuse(DC.badLogType);
    const route = dataCollectorRoute(compiled, auth.identity, auth.workspaceId, logType);
    if (!route) return refuse(DC.unknownRoute, undefined, { identity: auth.identity.name, logType });
    if (!auth.identity.routes.has(route.name)) return refuse(DC.forbidden, undefined, { identity: auth.identity.name, route: route.name });

    if (contentType === undefined) return refuse(DC.missingContentType);
    if (!contentTypeIsJson(contentType)) return refuse(DC.badContentType);
    const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
    const tgf = req.headers['time-generated-field'];
    const timeGeneratedField = typeof tgf === 'string' ? tgf.trim() : '';

    await this.accept(api, req.raw, reply, t0, auth.identity, route, {
      gzip: encoding === 'gzip',
      mode: route.translate ? 'translate' : 'dataCollector',
      timeGeneratedField,
      maxBytes: cfg.limits.dataCollectorBytes,
      table: DC,
      decodeTable: DC_DECODE,
      body: dcBody,
      successStatus: 200,
    });
  }

  private async accept(api: Api, raw: IncomingMessage, reply: FastifyReply, t0: number, identity: Identity, route: Route, o: AcceptOptions): Promise<void> {
    const { deps } = this;
    const cfg = deps.config();
    const fields = { identity: identity.name, route: route.name };
    const refuse = (x: ForwarderRefusal, detail?: string): void => {
      if (x.reason === 'spool_full' || x.reason === 'memory') deps.shed(x.reason);
      this.refuse(api, reply, x, o.body(x), detail, fields);
    };

    // Refuse before reading a byte when the upload cannot be kept anyway.
    const stats = deps.spool.stats();
    if (stats.bytes >= stats.maxBytes) return refuse(o.table.spoolFull);
    if (cfg.limits.maxRssBytes > 0 && this.#rss() > cfg.limits.maxRssBytes) return refuse(o.table.memory);
    // A chunked upload (no Content-Length) may grow to the limit: reserve all of it.
    const declared = Number(raw.headers['content-length'] ?? NaN);
    const reserve = Number.isFinite(declared) ? Math.min(declared, o.maxBytes) : o.maxBytes;
    if (this.#inflightBytes + reserve > cfg.limits.maxInflightBytes) return refuse(o.table.memory);
    this.#inflightBytes += reserve;
    try {
      await this.#acceptBody(api, raw, reply, t0, identity, route, o, refuse);
    } finally {
      this.#inflightBytes -= reserve;
    }
  }

  async #acceptBody(
    api: Api,
    raw: IncomingMessage,
    reply: FastifyReply,
    t0: number,
    identity: Identity,
    route: Route,
    o: AcceptOptions,
    refuse: (x: ForwarderRefusal, detail?: string) => void,
  ): Promise<void> {
    const { deps } = this;
    const cfg = deps.config();
    const fields = { identity: identity.name, route: route.name };
    const read = await readBody(raw, o.maxBytes, cfg.limits.bodyIdleMs);
    if (!read.ok) {
      if (read.why === 'aborted') {
        deps.metrics?.uploadsRefused.inc({ api, reason: 'aborted' });
        return;
      }
      return refuse(read.why === 'tooLarge' ? o.table.tooLarge : o.table.timeout);
    }
    const wireBytes = read.body.byteLength;
    deps.metrics?.bytesReceived.inc({ api }, wireBytes);
    const stream = streamKey(route.destination.name, route.upstream, o.mode === 'dataCollector' ? o.timeGeneratedField : '');
    const seal = o.mode === 'logsIngestion' ? sealSizes(cfg.batch.maxBytes) : null;

    // A body that will most likely be kept as it came (a full gzip chunk, as the SDK sends) is
    // written to the spool, held, while a lane thread checks it: the upload waits for the longer
    // of the two instead of both in turn. The check settles the held entry: sent, or dropped.
    const early = seal !== null && o.gzip && likelySealed(read.body, seal) ? this.#appendHeld(stream, read.body) : null;

    let decoded;
    try {
      decoded = await deps.pool.decode({
        kind: 'decode',
        // The lane thread takes the buffer it is given: the spool is still writing this one.
        body: early === null ? read.body : Buffer.from(read.body),
        gzip: o.gzip,
        maxDecodedBytes: o.maxBytes,
        // "[" and "]" around a batch of one entry must still fit.
        entryMaxBytes: cfg.batch.maxBytes - 2,
        mode: o.mode,
        timeGeneratedField: o.timeGeneratedField,
        receivedAt: new Date().toISOString(),
        seal,
      });
    } catch (err) {
      this.#dropHeld(early);
      deps.logger.error({ event: Events.FWD_POOL_ERROR, err, ...fields }, 'forwarder pool failed to decode an upload');
      return refuse(o.table.internal);
    }
    if (!decoded.ok) {
      this.#dropHeld(early);
      return refuse(o.decodeTable[decoded.error], decoded.detail);
    }
    deps.metrics?.recordsReceived.inc({ api }, decoded.records);
    const spoolRefusal = (err: unknown): void => {
      const code = isPortcullisError(err) ? err.code : '';
      if (code === ForwarderErrors.SPOOL_FULL.code) return refuse(o.table.spoolFull);
      deps.logger.error({ event: Events.FWD_SPOOL_ERROR, err, ...fields }, 'spool append failed: upload refused, nothing acknowledged');
      refuse(code === ForwarderErrors.SPOOL_CLOSED.code ? o.table.draining : o.table.spoolIo);
    };
    if (early !== null) {
      const held = await early;
      if (!held.ok) return spoolRefusal(held.err);
      const records = sealedRecords(decoded);
      if (records !== null) {
        await deps.spool.settle(held.id, records);
        return this.success(api, reply, o.successStatus, t0, decoded.records, route, identity, wireBytes);
      }
      // Valid, but not kept as it came after all (a gzip of several members, say): spooled below
      // as decoded, and the held copy dropped.
      this.#dropHeld(early);
    }
    if (decoded.records === 0) return this.success(api, reply, o.successStatus, t0, 0, route, identity, wireBytes);

    try {
      await deps.spool.append(decoded.entries.map((e) => ({ stream, records: e.records, payload: e.payload, sealed: e.sealed === true })));
    } catch (err) {
      return spoolRefusal(err);
    }
    this.success(api, reply, o.successStatus, t0, decoded.records, route, identity, wireBytes);
  }

  /** Spools a body held (AppendItem.held) until its check settles it; never rejects. */
  #appendHeld(stream: string, body: Uint8Array): Promise<{ ok: true; id: number } | { ok: false; err: unknown }> {
    return this.deps.spool.append([{ stream, records: 0, payload: body, sealed: true, held: true }]).then(
      ([entry]) => (entry === undefined ? { ok: false as const, err: new Error('spool returned no entry') } : { ok: true as const, id: entry.id }),
      (err: unknown) => ({ ok: false as const, err }),
    );
  }

  /**
   * The held copy of a refused upload (or one spooled as decoded after all) is dropped once it is
   * written; nobody waits for that. Were the drop lost, the check after a restart drops it.
   */
  #dropHeld(early: Promise<{ ok: true; id: number } | { ok: false; err: unknown }> | null): void {
    if (early === null) return;
    void early.then(async (held) => {
      if (!held.ok) return;
      try {
        await this.deps.spool.settle(held.id, null);
      } catch (err) {
        this.deps.logger.warn({ event: Events.FWD_SPOOL_ERROR, err }, 'spool: dropping the held copy of a refused upload failed (a restart drops it)');
      }
    });
  }

  private success(api: Api, reply: FastifyReply, status: number, t0: number, records: number, route: Route, identity: Identity, bytes: number): void {
    const { metrics, logger } = this.deps;
    metrics?.recordsAccepted.inc({ api, route: route.name }, records);
    metrics?.ackLatency.observe({ api }, (performance.now() - t0) / 1000);
    if (logger.isLevelEnabled('debug'))
      logger.debug({ event: Events.FWD_UPLOAD, api, identity: identity.name, route: route.name, records, bytes }, 'upload spooled');
    void reply.code(status).send();
  }

  private refuse(api: Api, reply: FastifyReply, x: ForwarderRefusal, body: string, detail?: string, fields?: Record<string, unknown>): void {
    const { metrics, logger } = this.deps;
    metrics?.uploadsRefused.inc({ api, reason: x.reason });
    const level = x.status >= 500 && x.reason !== 'draining' ? 'error' : 'warn';
    logger[level](
      { event: x.event, api, status: x.status, code: x.code, reason: x.reason, ...(detail ? { detail } : {}), ...fields },
      `upload refused: ${x.reason}`,
    );
    if (x.retryAfter) void reply.header('retry-after', String(this.deps.config().limits.retryAfterS));
    // The rest of a refused body is not read: close the connection rather than drain it.
    if (x.status === 413 || x.status === 408 || x.status >= 500) void reply.header('connection', 'close');
    void reply.code(x.status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}

/** With a SharedKey the workspace is known; with an API key or certificate, the identity's routes for that Log-Type decide. */
function dataCollectorRoute(compiled: CompiledForwarder, identity: Identity, workspaceId: string | undefined, logType: string): Route | null {
  if (workspaceId !== undefined) return compiled.dcRoutes.get(`${workspaceId}\u0000${logType}`) ?? null;
  let found: Route | null = null;
  for (const [key, route] of compiled.dcRoutes) {
    if (key.endsWith(`\u0000${logType}`) && identity.routes.has(route.name)) {
      if (found) return null; // ambiguous: the client must sign to say which workspace
      found = route;
    }
  }
  return found;
}

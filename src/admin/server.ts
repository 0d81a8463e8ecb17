import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { timingSafeEqual, createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AdminConfig } from '../config/types.js';
import { parseListenAddress, type ConfigIssue } from '../config/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import type { PortcullisConfig } from '../config/types.js';
import type { Readiness, Service } from '../gateway/service.js';
import { listenStartError, ServiceStartError } from '../gateway/errors.js';
import { errorCode, errorMessage } from '../util/errors.js';

export type { Readiness };

/** What the admin listener serves; supplied by the single-process or the cluster runtime. */
export interface AdminHooks {
  metrics(): Promise<{ contentType: string; body: string }>;
  readiness(): Readiness;
  status(): Record<string, unknown>;
  reload(): Promise<{ ok: boolean; source?: string; issues?: ConfigIssue[]; message?: string }>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The status fastify (or a plugin) put on an error it threw, e.g. 400 for a bad body. */
function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('statusCode' in err)) return undefined;
  return typeof err.statusCode === 'number' ? err.statusCode : undefined;
}

function readPem(configKey: string, what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = errorCode(err) ?? 'error';
    throw new ServiceStartError(configKey, `cannot read the ${what} file ${file} (${code})`, err);
  }
}

/** Check the files one by one, so the one line at start says which file is bad. */
function loadTls(tls: NonNullable<AdminConfig['tls']>): { cert: Buffer; key: Buffer } {
  const cert = readPem('admin.tls.certFile', 'certificate', tls.certFile);
  const key = readPem('admin.tls.keyFile', 'private key', tls.keyFile);
  const usable = (configKey: string, what: string, options: { cert?: Buffer; key?: Buffer }): void => {
    try {
      createSecureContext(options);
    } catch (err) {
      throw new ServiceStartError(configKey, `${what}: ${errorMessage(err)}`, err);
    }
  };
  usable('admin.tls.certFile', `${tls.certFile} is not a usable PEM certificate`, { cert });
  usable('admin.tls.keyFile', `${tls.keyFile} is not a usable PEM private key`, { key });
  usable('admin.tls', `certificate ${tls.certFile} and key ${tls.keyFile} do not match`, { cert, key });
  return { cert, key };
}

/**
 * The admin listener: /metrics, /healthz, /readyz, and the management API under /api/v1/
 * (bearer token from admin.token; without a token configured the API is off). Throws
 * ServiceStartError naming admin.listen or the admin.tls file at fault.
 */
export async function startAdminServer(config: AdminConfig, hooks: AdminHooks, logger: Logger): Promise<{ app: FastifyInstance; port: number }> {
  const https = config.tls ? loadTls(config.tls) : null;
  const app: FastifyInstance = Fastify({
    logger: false,
    ...(https ? { https } : {}),
    connectionTimeout: 30_000,
    keepAliveTimeout: 10_000,
    requestTimeout: 30_000,
    bodyLimit: 64 * 1024,
    return503OnClosing: false,
  });
  const tokenDigest = config.token ? digest(config.token) : null;

  const authorise = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!tokenDigest) {
      await reply.code(404).send({ error: { code: 'PCL_ERR_API_DISABLED', message: 'management API is off: set admin.token' } });
      return;
    }
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : '';
    // Compare digests so the comparison takes the same time whatever the token length.
    if (!given || !timingSafeEqual(digest(given), tokenDigest)) {
      logger.warn({ event: Events.CLIENT_FORBIDDEN, code: 'PCL_ERR_API_AUTH', client: req.ip, url: req.url }, 'admin API: bad or missing token');
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: { code: 'PCL_ERR_API_AUTH', message: 'bearer token required' } });
    }
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = hooks.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/metrics', async (_req, reply) => {
    if (!config.metrics) return reply.code(404).send({ error: { code: 'PCL_ERR_METRICS_DISABLED', message: 'metrics are off (admin.metrics: false)' } });
    const { contentType, body } = await hooks.metrics();
    return reply.header('content-type', contentType).send(body);
  });
  app.register(
    async (api) => {
      api.addHook('onRequest', authorise);
      api.get('/status', async () => hooks.status());
      api.post('/reload', async (_req, reply) => {
        const r = await hooks.reload();
        return reply.code(r.ok ? 200 : 422).send(r);
      });
    },
    { prefix: '/api/v1' },
  );
  app.setErrorHandler(async (err, req, reply) => {
    const status = httpStatus(err) ?? 500;
    if (status >= 500) logger.error({ event: Events.INTERNAL_ERROR, err, url: req.url }, 'admin request failed');
    return reply.code(status).send({ error: { code: errorCode(err) ?? 'PCL_ERR_ADMIN', message: errorMessage(err) } });
  });

  const { host, port } = parseListenAddress(config.listen);
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw listenStartError('admin.listen', { host, port }, err);
  }
  const addr = app.server.address();
  const bound = addr && typeof addr === 'object' ? addr.port : port;
  logger.info({ event: Events.LIFECYCLE, host, port: bound, tls: https !== null }, 'admin listening');
  return { app, port: bound };
}

/** The admin listener as a Service: ready once bound; its settings change only on restart. */
export class AdminListener implements Service {
  readonly name = 'admin';
  private app: FastifyInstance | null = null;
  private listening = false;

  constructor(
    private readonly config: AdminConfig,
    private readonly hooks: AdminHooks,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    ({ app: this.app } = await startAdminServer(this.config, this.hooks, this.logger));
    this.listening = true;
  }

  reload(_next: PortcullisConfig): void {
    // admin.* is restart-only (restartOnlyChanges warns about it).
  }

  async drain(): Promise<void> {
    this.listening = false;
    await this.app?.close();
  }

  readiness(): Readiness {
    return this.listening ? { ready: true, reasons: [] } : { ready: false, reasons: ['admin listener not bound'] };
  }
}

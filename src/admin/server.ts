import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { timingSafeEqual, createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import type { AdminConfig } from '../config/types.js';
import { parseListenAddress } from '../config/index.js';
import { ApiErrors } from '../errors/catalogue.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import type { PortcullisConfig } from '../config/types.js';
import type { Readiness, Service } from '../gateway/service.js';
import { listenStartError, ServiceStartError } from '../gateway/errors.js';
import { errorCode, errorMessage } from '../util/errors.js';
import { registerResources } from './api.js';
import { ApiFailure, ConfigChanges, type ChangeHooks } from './changes.js';

export type { Readiness };

/** What the admin listener serves; supplied by the single-process or the cluster runtime. */
export interface AdminHooks extends ChangeHooks {
  metrics(): Promise<{ contentType: string; body: string }>;
  readiness(): Readiness;
  status(): Record<string, unknown>;
}

/** Where the generated OpenAPI document is served (without a token: it holds no configuration). */
export const OPENAPI_PATH = '/api/v1/openapi.json';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The status fastify (or a plugin) put on an error it threw, e.g. 400 for a bad body. */
function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('statusCode' in err)) return undefined;
  return typeof err.statusCode === 'number' ? err.statusCode : undefined;
}

/** A request fastify refused against a route schema (body, params, query). */
function isValidationError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'validation' in err && Array.isArray(err.validation);
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
    // Refuse what the schemas do not describe instead of silently dropping or converting it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
  const tokenDigest = config.token ? digest(config.token) : null;
  const changes = new ConfigChanges(hooks, logger);
  // Before any route: the plugin collects the route schemas as they are added.
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Portcullis admin API',
        version: 'v1',
        description: 'Manage a running Portcullis gateway: every change is validated, written to the config file (comments and order kept) and applied live.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'admin.token (or tokenFile / tokenEnv)' } } },
    },
  });

  const authorise = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = req.url.split('?')[0];
    if (!tokenDigest) {
      const e = ApiErrors.API_DISABLED;
      logger.warn({ event: e.event, code: e.code, client: req.ip, method: req.method, path }, 'admin API: request while the API is off');
      await reply.code(e.status).send({ error: { code: e.code, message: e.message } });
      return;
    }
    const match = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    const given = match?.[1] ?? '';
    // Compare digests so the comparison takes the same time whatever the token length.
    if (!given || !timingSafeEqual(digest(given), tokenDigest)) {
      const e = ApiErrors.API_AUTH;
      logger.warn(
        { event: e.event, code: e.code, client: req.ip, method: req.method, path, why: given ? 'wrong token' : 'no bearer token' },
        'admin API: bad or missing token',
      );
      await reply
        .code(e.status)
        .header('www-authenticate', 'Bearer')
        .send({ error: { code: e.code, message: e.message } });
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
      api.get('/status', { schema: { tags: ['status'], summary: 'Processes, listeners, connections, readiness', security: [{ bearerAuth: [] }] } }, async () =>
        hooks.status(),
      );
      api.post(
        '/reload',
        {
          schema: {
            tags: ['status'],
            summary: 'Re-read the config file and apply it (as SIGHUP): 422 with the issues when it is invalid, the running configuration kept',
            security: [{ bearerAuth: [] }],
          },
        },
        async (_req, reply) => {
          const r = await hooks.reload();
          return reply.code(r.ok ? 200 : 422).send(r);
        },
      );
      registerResources(api, hooks, changes);
    },
    { prefix: '/api/v1' },
  );
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => app.swagger());
  app.setErrorHandler(async (err, req, reply) => {
    const path = req.url.split('?')[0];
    if (err instanceof ApiFailure) {
      const { entry } = err;
      const fields = { event: entry.event, code: entry.code, client: req.ip, method: req.method, path, issues: err.issues };
      if (entry.status >= 500) logger.error(fields, `admin API: ${err.message}`);
      else logger.warn(fields, `admin API: ${err.message}`);
      return reply.code(entry.status).send({ error: { code: entry.code, message: err.message }, ...(err.issues ? { issues: err.issues } : {}) });
    }
    if (isValidationError(err)) {
      const e = ApiErrors.API_BAD_REQUEST;
      const message = `${e.message}: ${errorMessage(err)}`;
      logger.warn({ event: e.event, code: e.code, client: req.ip, method: req.method, path }, `admin API: ${message}`);
      return reply.code(e.status).send({ error: { code: e.code, message } });
    }
    const status = httpStatus(err) ?? 500;
    if (status >= 500) logger.error({ event: Events.INTERNAL_ERROR, err, method: req.method, path }, 'admin request failed');
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

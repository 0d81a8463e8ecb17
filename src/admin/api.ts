/**
 * The management API's resources under /api/v1 (the Log Analytics gateway's cmdlets as REST):
 * config, allow (rules, hosts, presets, workspaces), relay, client certificates. The route schemas
 * validate input and describe output; the OpenAPI document is generated from them
 * (@fastify/swagger), so there is no second description to keep in step.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { allowView, certificatesView, edits, parseDottedPath, redactedConfig, relayView, valueAt, type Edit, type PortcullisConfig } from '../config/index.js';
import { ApiErrors } from '../errors/catalogue.js';
import { ApiFailure, type ChangeAnswer, type ConfigChanges, type Who } from './changes.js';

// ---- schemas (plain JSON Schema; fastify validates with them and @fastify/swagger publishes them) ----

const str = { type: 'string', minLength: 1 } as const;
const stringList = { type: 'array', items: str } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
/** Any JSON value (a config value). */
const anyValue = {} as const;

const issue = {
  type: 'object',
  properties: { path: { type: 'string' }, line: { type: 'integer' }, column: { type: 'integer' }, message: { type: 'string' }, code: { type: 'string' } },
} as const;

export const errorSchema = {
  description: 'Refused: `error.code` is a stable PCL_ERR_API_* code (docs/errors.md); `issues` lists what makes a change invalid.',
  type: 'object',
  properties: {
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
    issues: { type: 'array', items: issue },
  },
} as const;

const changeSchema = {
  description: 'The change: what it did, whether the file was written and the gateway applied it, and the keys of the running configuration that changed.',
  type: 'object',
  properties: {
    message: { type: 'string' },
    written: { type: 'boolean' },
    applied: { type: 'boolean' },
    changed: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, before: anyValue, after: anyValue } },
    },
    restartRequired: { type: 'array', items: { type: 'string' }, description: 'Keys that changed but take effect on restart (admin, proxy.listen, ...).' },
  },
} as const;

const ruleSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    hosts: { type: 'array', items: { type: 'string' } },
    ports: { type: 'array', items: { type: 'integer' } },
    allowPrivate: { type: 'boolean' },
    mode: { type: 'string', enum: ['enforce', 'report'] },
  },
} as const;

const workspaceSchema = { type: 'object', properties: { id: { type: 'string' }, region: { type: 'string' } } } as const;

const allowSchema = {
  type: 'object',
  properties: {
    presets: { type: 'array', items: { type: 'string' } },
    workspaces: { type: 'array', items: workspaceSchema },
    regions: { type: 'array', items: { type: 'string' } },
    rules: { type: 'array', items: ruleSchema },
  },
} as const;

const passwordSchema = {
  description: 'Where the password comes from; its value is never returned.',
  type: 'object',
  properties: { source: { type: 'string', enum: ['none', 'inline', 'file', 'env'] }, file: { type: 'string' }, env: { type: 'string' } },
} as const;

const relaySchema = {
  type: 'object',
  properties: {
    configured: { type: 'boolean' },
    proxies: { type: 'array', items: { type: 'object', properties: { url: { type: 'string' }, username: { type: 'string' }, password: passwordSchema } } },
    bypass: { type: 'array', items: { type: 'string' } },
    backoffMs: { type: 'integer' },
    connectMs: { type: 'integer' },
  },
} as const;

const certificatesSchema = {
  type: 'object',
  properties: { subjects: { type: 'array', items: { type: 'string' } }, thumbprintsSha256: { type: 'array', items: { type: 'string' } } },
} as const;

/** Every response a route can give: its own 200 and the error shape. */
function responses(ok: object): Record<string, object> {
  return { 200: ok, '4xx': errorSchema, '5xx': errorSchema };
}

const secured = [{ bearerAuth: [] }];

function params(names: Record<string, string>): object {
  return {
    type: 'object',
    required: Object.keys(names),
    properties: Object.fromEntries(Object.entries(names).map(([k, description]) => [k, { ...str, description }])),
  };
}

// ---- request shapes (what the schemas above let through) ----

interface RuleBody {
  name?: string;
  hosts: string[];
  ports?: number[];
  allowPrivate?: boolean;
  mode?: 'enforce' | 'report';
}

interface RelayBody {
  proxies: Array<{ url: string; username?: string; password?: string; passwordFile?: string; passwordEnv?: string }>;
  bypass?: string[];
  backoffMs?: number;
  connectMs?: number;
}

interface CertificateBody {
  subject?: string;
  thumbprintSha256?: string;
}

/** The actor the caller names (the CLI sends user@host); printable ASCII, bounded, so it cannot forge log structure. */
function whoOf(req: FastifyRequest): Who {
  const raw = req.headers['x-portcullis-actor'];
  const actor = typeof raw === 'string' ? raw.replace(/[^\x20-\x7e]/g, '').slice(0, 100) : '';
  return actor ? { client: req.ip, actor } : { client: req.ip };
}

export interface ApiReadHooks {
  config(): PortcullisConfig;
}

/** Registers the /api/v1 resources on `api` (already behind the token check). */
export function registerResources(api: FastifyInstance, read: ApiReadHooks, changes: ConfigChanges): void {
  const change = (req: FastifyRequest, action: string, edit: Edit): Promise<ChangeAnswer> => changes.apply(action, whoOf(req), edit);

  // ---- config ----
  api.get(
    '/config',
    {
      schema: {
        tags: ['config'],
        summary: 'The configuration in force (defaults filled, secrets redacted)',
        security: secured,
        response: responses({ type: 'object', additionalProperties: true }),
      },
    },
    async () => redactedConfig(read.config()),
  );
  api.get<{ Params: { path: string } }>(
    '/config/:path',
    {
      schema: {
        tags: ['config'],
        summary: 'One key of the configuration in force, by dotted path (proxy.timeouts.idleMs, allow.rules.0.hosts)',
        security: secured,
        params: params({ path: 'dotted key path' }),
        response: responses({ type: 'object', properties: { path: { type: 'string' }, value: anyValue } }),
      },
    },
    async (req) => {
      const path = parseDottedPath(req.params.path);
      const value = path ? valueAt(redactedConfig(read.config()), path) : undefined;
      if (value === undefined) throw new ApiFailure(ApiErrors.API_NOT_FOUND, `no key ${req.params.path} in the configuration`);
      return { path: req.params.path, value };
    },
  );
  api.put<{ Params: { path: string }; Body: { value: unknown } }>(
    '/config/:path',
    {
      schema: {
        tags: ['config'],
        summary: 'Set one key (the whole resulting configuration is validated first; nothing is written when it would not load)',
        security: secured,
        params: params({ path: 'dotted key path' }),
        body: { type: 'object', required: ['value'], additionalProperties: false, properties: { value: anyValue } },
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'config.set', edits.setValue(req.params.path, req.body.value)),
  );
  api.delete<{ Params: { path: string } }>(
    '/config/:path',
    {
      schema: {
        tags: ['config'],
        summary: 'Remove one key from the file, so its default applies',
        security: secured,
        params: params({ path: 'dotted key path' }),
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'config.unset', edits.unsetValue(req.params.path)),
  );

  // ---- allow ----
  api.get(
    '/allow',
    { schema: { tags: ['allow'], summary: 'The allowlist: presets, workspaces, regions and rules', security: secured, response: responses(allowSchema) } },
    async () => allowView(read.config()),
  );
  api.get(
    '/allow/rules',
    {
      schema: {
        tags: ['allow'],
        summary: 'The destination rules',
        security: secured,
        response: responses({ type: 'object', properties: { rules: { type: 'array', items: ruleSchema } } }),
      },
    },
    async () => ({ rules: allowView(read.config()).rules }),
  );
  api.get<{ Params: { name: string } }>(
    '/allow/rules/:name',
    { schema: { tags: ['allow'], summary: 'One rule', security: secured, params: params({ name: 'rule name' }), response: responses(ruleSchema) } },
    async (req) => {
      const rule = read.config().allow.rules.find((r) => r.name === req.params.name);
      if (!rule) throw new ApiFailure(ApiErrors.API_NOT_FOUND, `no rule named ${req.params.name}`);
      return rule;
    },
  );
  api.post<{ Body: RuleBody }>(
    '/allow/rules',
    {
      schema: {
        tags: ['allow'],
        summary: `Allow hosts: add them to the named rule (ports given are added too), or create the rule (default name ${edits.DEFAULT_RULE_NAME}, ports [443])`,
        security: secured,
        body: {
          type: 'object',
          required: ['hosts'],
          additionalProperties: false,
          properties: {
            name: str,
            hosts: { ...stringList, minItems: 1 },
            ports: { type: 'array', items: port, minItems: 1 },
            allowPrivate: { type: 'boolean' },
            mode: { type: 'string', enum: ['enforce', 'report'] },
          },
        },
        response: responses(changeSchema),
      },
    },
    async (req) => {
      const { name, ...rest } = req.body;
      return change(req, 'allow.add', edits.addHosts({ ...rest, ...(name !== undefined ? { rule: name } : {}) }));
    },
  );
  api.delete<{ Params: { name: string } }>(
    '/allow/rules/:name',
    { schema: { tags: ['allow'], summary: 'Remove a rule', security: secured, params: params({ name: 'rule name' }), response: responses(changeSchema) } },
    async (req) => change(req, 'allow.remove-rule', edits.removeRule(req.params.name)),
  );
  api.delete<{ Params: { name: string; host: string } }>(
    '/allow/rules/:name/hosts/:host',
    {
      schema: {
        tags: ['allow'],
        summary: 'Remove a host from one rule (a rule left empty is removed)',
        security: secured,
        params: params({ name: 'rule name', host: 'host as listed' }),
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'allow.remove', edits.removeHost(req.params.host, req.params.name)),
  );
  api.get(
    '/allow/hosts',
    {
      schema: {
        tags: ['allow'],
        summary: 'Every host of every rule, with its rule and ports (Get-OMSGatewayAllowedHost)',
        security: secured,
        response: responses({
          type: 'object',
          properties: {
            hosts: {
              type: 'array',
              items: {
                type: 'object',
                properties: { host: { type: 'string' }, rule: { type: 'string' }, ports: { type: 'array', items: { type: 'integer' } } },
              },
            },
          },
        }),
      },
    },
    async () => ({ hosts: read.config().allow.rules.flatMap((r) => r.hosts.map((host) => ({ host, rule: r.name, ports: r.ports }))) }),
  );
  api.delete<{ Params: { host: string } }>(
    '/allow/hosts/:host',
    {
      schema: {
        tags: ['allow'],
        summary: 'Remove a host from every rule that lists it (Remove-OMSGatewayAllowedHost); rules left empty are removed',
        security: secured,
        params: params({ host: 'host as listed' }),
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'allow.remove', edits.removeHost(req.params.host)),
  );
  api.get(
    '/allow/presets',
    {
      schema: {
        tags: ['allow'],
        summary: 'Cloud presets in use',
        security: secured,
        response: responses({ type: 'object', properties: { presets: { type: 'array', items: { type: 'string' } } } }),
      },
    },
    async () => ({ presets: read.config().allow.presets }),
  );
  api.post<{ Body: { preset: string } }>(
    '/allow/presets',
    {
      schema: {
        tags: ['allow'],
        summary: 'Use a cloud preset',
        security: secured,
        body: { type: 'object', required: ['preset'], additionalProperties: false, properties: { preset: str } },
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'allow.add-preset', edits.addPreset(req.body.preset)),
  );
  api.delete<{ Params: { preset: string } }>(
    '/allow/presets/:preset',
    {
      schema: {
        tags: ['allow'],
        summary: 'Stop using a cloud preset',
        security: secured,
        params: params({ preset: 'preset name' }),
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'allow.remove-preset', edits.removePreset(req.params.preset)),
  );
  api.get(
    '/allow/workspaces',
    {
      schema: {
        tags: ['allow'],
        summary: "Workspaces the presets' templates are expanded for",
        security: secured,
        response: responses({ type: 'object', properties: { workspaces: { type: 'array', items: workspaceSchema } } }),
      },
    },
    async () => ({ workspaces: read.config().allow.workspaces }),
  );
  api.post<{ Body: { id: string; region?: string } }>(
    '/allow/workspaces',
    {
      schema: {
        tags: ['allow'],
        summary: 'Add a workspace (or set the region of one listed)',
        security: secured,
        body: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: str, region: str } },
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'allow.add-workspace', edits.addWorkspace(req.body)),
  );
  api.delete<{ Params: { id: string } }>(
    '/allow/workspaces/:id',
    {
      schema: { tags: ['allow'], summary: 'Remove a workspace', security: secured, params: params({ id: 'workspace ID' }), response: responses(changeSchema) },
    },
    async (req) => change(req, 'allow.remove-workspace', edits.removeWorkspace(req.params.id)),
  );

  // ---- relay ----
  api.get(
    '/relay',
    {
      schema: {
        tags: ['relay'],
        summary: 'Relay (upstream) proxies: passwords are never returned, only whether one is set and where from',
        security: secured,
        response: responses(relaySchema),
      },
    },
    async () => relayView(read.config()),
  );
  api.put<{ Body: RelayBody }>(
    '/relay',
    {
      schema: {
        tags: ['relay'],
        summary:
          'Set the relay proxies (upstreamProxy). A proxy given without a password keeps the one configured for the same url and username; give password, passwordFile or passwordEnv to change it.',
        security: secured,
        body: {
          type: 'object',
          required: ['proxies'],
          additionalProperties: false,
          properties: {
            proxies: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'object',
                required: ['url'],
                additionalProperties: false,
                properties: { url: str, username: str, password: str, passwordFile: str, passwordEnv: str },
              },
            },
            bypass: { type: 'array', items: str },
            backoffMs: { type: 'integer' },
            connectMs: { type: 'integer' },
          },
        },
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'relay.set', edits.setRelay(req.body)),
  );
  api.delete(
    '/relay',
    { schema: { tags: ['relay'], summary: 'Remove the relay: dial destinations directly', security: secured, response: responses(changeSchema) } },
    async (req) => change(req, 'relay.clear', edits.clearRelay()),
  );

  // ---- client certificates ----
  const certificateQuery = {
    type: 'object',
    minProperties: 1,
    additionalProperties: false,
    properties: { subject: { ...str, description: 'RFC 4514-style subject' }, thumbprintSha256: { ...str, description: '64 hex digits, colons optional' } },
  } as const;
  api.get(
    '/clients/certificates',
    {
      schema: {
        tags: ['clients'],
        summary: 'Allowed client-certificate subjects and SHA-256 thumbprints (both empty: no check)',
        security: secured,
        response: responses(certificatesSchema),
      },
    },
    async () => certificatesView(read.config()),
  );
  api.post<{ Body: CertificateBody }>(
    '/clients/certificates',
    {
      schema: {
        tags: ['clients'],
        summary: 'Allow a client certificate by subject and/or thumbprint (Add-OMSGatewayAllowedClientCertificate)',
        security: secured,
        body: certificateQuery,
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'clients.add', edits.addCertificate(req.body)),
  );
  api.delete<{ Querystring: CertificateBody }>(
    '/clients/certificates',
    {
      schema: {
        tags: ['clients'],
        summary: 'Remove an allowed subject and/or thumbprint (Remove-OMSGatewayAllowedClientCertificate)',
        security: secured,
        querystring: certificateQuery,
        response: responses(changeSchema),
      },
    },
    async (req) => change(req, 'clients.remove', edits.removeCertificate(req.query)),
  );
}

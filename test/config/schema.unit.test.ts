import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { defaultConfig, type PortcullisConfig } from '../../src/config/index.js';

type Schema = {
  type?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
};

const schemaFile = new URL('../../config/portcullis.schema.json', import.meta.url);
const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Schema;

// The defaults the brief and ARCHITECTURE.md promise; typed so a shape drift from types.ts fails to compile.
const EXPECTED_DEFAULTS: PortcullisConfig = {
  proxy: {
    listen: ['0.0.0.0:8080'],
    mode: 'enforce',
    timeouts: { connectMs: 10000, dnsMs: 5000, idleMs: 300000, maxTunnelMs: 0, headersMs: 10000, upstreamResponseMs: 60000 },
    limits: { maxConnections: 10000, maxConnectionsPerClient: 1000, maxHeaderBytes: 16384 },
    drainMs: 30000,
    drainDelayMs: 0,
    workers: 0,
    balance: 'kernel',
    relay: 'auto',
    tlsInspection: { enabled: true, requireTls: false, sniMustMatch: true, minVersion: '1.2', peekTimeoutMs: 10000 },
  },
  allow: { presets: ['azure-public'], workspaces: [], regions: [], rules: [] },
  clients: { deny: [], certificates: { subjects: [], thumbprintsSha256: [] }, groups: [] },
  dns: { overrides: {}, cacheTtlMs: 30000 },
  admin: { listen: '127.0.0.1:9464', metrics: true },
  log: { level: 'info', access: true },
};

/** Every object schema in the tree, with its path. */
function objectSchemas(s: Schema, path = '$'): Array<[string, Schema]> {
  const out: Array<[string, Schema]> = [];
  if (s.type === 'object') out.push([path, s]);
  for (const [k, sub] of Object.entries(s.properties ?? {})) out.push(...objectSchemas(sub, `${path}.${k}`));
  if (s.items) out.push(...objectSchemas(s.items, `${path}[]`));
  return out;
}

describe('config/portcullis.schema.json', () => {
  it('compiles in Ajv strict mode and is a valid draft-07 schema', () => {
    const ajv = new Ajv({ strict: true, allErrors: true, useDefaults: true });
    expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
    expect(() => ajv.compile(schema)).not.toThrow();
    expect((schema as { $schema?: string }).$schema).toBe('http://json-schema.org/draft-07/schema#');
  });

  it('rejects unknown keys at every level (only dns.overrides is an open map)', () => {
    const open = objectSchemas(schema)
      .filter(([, s]) => s.additionalProperties !== false)
      .map(([p]) => p);
    expect(open).toEqual(['$.dns.overrides']);
  });

  it('describes every property, for editor completion', () => {
    const missing: string[] = [];
    for (const [path, s] of objectSchemas(schema)) {
      for (const [k, sub] of Object.entries(s.properties ?? {})) if (!sub.description) missing.push(`${path}.${k}`);
    }
    expect(missing).toEqual([]);
  });

  it('has defaults that agree with defaultConfig(), in both directions', () => {
    const config = defaultConfig({});
    // Schema → config: every leaf default is what defaultConfig() holds at that path.
    const walk = (s: Schema, value: unknown, path: string): void => {
      for (const [k, sub] of Object.entries(s.properties ?? {})) {
        const v = (value as Record<string, unknown>)[k];
        // Optional sections without a default (admin.tls) stay absent like any other optional key.
        const nested = sub.type === 'object' && sub.properties !== undefined && sub.default !== undefined;
        if (nested) expect(v, `${path}${k} is filled in`).toBeTypeOf('object');
        else if (sub.default !== undefined) expect(v, path + k).toEqual(sub.default);
        else expect(v, `${path}${k} has no default, so it must stay absent`).toBeUndefined();
        if (nested) walk(sub, v, `${path}${k}.`);
      }
    };
    walk(schema, config, '');
    // Config → schema: every value in defaultConfig() comes from a schema default.
    const back = (value: unknown, s: Schema | undefined, path: string): void => {
      expect(s, `no schema for ${path}`).toBeDefined();
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && s?.properties) {
        for (const [k, v] of Object.entries(value)) back(v, s.properties[k], `${path}.${k}`);
      } else {
        expect(value, path).toEqual(s?.default);
      }
    };
    back(config, schema, '$');
    expect(config).toEqual(EXPECTED_DEFAULTS);
  });
});

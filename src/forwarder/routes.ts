/**
 * forwarder config -> what the ingest and the sender look things up in: destinations (upstream
 * targets with their secrets loaded), routes (inbound DCR+stream or workspace+Log-Type -> a
 * destination stream) and identities (who may send to which routes). forwarderConfigCheck reports
 * what the JSON Schema cannot say, with config paths, so `check-config` names every problem.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import type { ForwarderConfig, ForwarderCredentialConfig, ForwarderDestinationConfig, PortcullisConfig } from '../config/types.js';
import { PortcullisError } from '../util/errors.js';

export const LOGS_INGESTION_MAX_BYTES = 1_048_576;
export const DATA_COLLECTOR_MAX_BYTES = 30 * 1024 * 1024;

export type Env = Record<string, string | undefined>;

export interface LogsIngestionDestination {
  readonly name: string;
  readonly type: 'logsIngestion';
  readonly endpoint: URL;
  readonly dcrId: string;
  readonly credential: ForwarderCredentialConfig;
  /** Overrides batch.ordered for this destination's streams. */
  readonly ordered?: boolean;
}

export interface DataCollectorDestination {
  readonly name: string;
  readonly type: 'dataCollector';
  readonly endpoint: URL;
  readonly workspaceId: string;
  /** Decoded workspace key (HMAC key). */
  readonly key: Buffer;
  /** Overrides batch.ordered for this destination's streams. */
  readonly ordered?: boolean;
}

export type Destination = LogsIngestionDestination | DataCollectorDestination;

export interface Route {
  readonly name: string;
  readonly inbound: 'logsIngestion' | 'dataCollector';
  readonly destination: Destination;
  /** Upstream stream (logsIngestion) or Log-Type (dataCollector). */
  readonly upstream: string;
  /** A Data Collector upload forwarded through the Logs Ingestion API. */
  readonly translate: boolean;
}

export interface Identity {
  readonly name: string;
  readonly apiKeyHash: Buffer | null;
  readonly sharedKey: { workspaceId: string; key: Buffer } | null;
  readonly certSubjects: ReadonlySet<string>;
  readonly certThumbprints: ReadonlySet<string>;
  readonly routes: ReadonlySet<string>;
}

export interface CompiledForwarder {
  readonly destinations: ReadonlyMap<string, Destination>;
  readonly routes: ReadonlyMap<string, Route>;
  readonly identities: readonly Identity[];
  /** `${dcrId}\0${stream}` -> route. */
  readonly liRoutes: ReadonlyMap<string, Route>;
  /** `${workspaceId lower}\0${logType}` -> route. */
  readonly dcRoutes: ReadonlyMap<string, Route>;
}

/** The spool's stream key: destination, upstream stream, and (Data Collector) the time-generated-field. */
export function streamKey(destination: string, upstream: string, timeGeneratedField = ''): string {
  return timeGeneratedField ? `${destination}\u0000${upstream}\u0000${timeGeneratedField}` : `${destination}\u0000${upstream}`;
}

export function parseStreamKey(key: string): { destination: string; upstream: string; timeGeneratedField: string } {
  const [destination = '', upstream = '', timeGeneratedField = ''] = key.split('\u0000');
  return { destination, upstream, timeGeneratedField };
}

/** A secret from a file (trimmed) or an environment variable; never logged. */
export function readSecret(file: string | undefined, envName: string | undefined, env: Env, what: string): string {
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new PortcullisError('PCL_ERR_FWD_SECRET', `${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  }
  if (envName !== undefined) {
    const v = env[envName];
    if (v === undefined || v === '') throw new PortcullisError('PCL_ERR_FWD_SECRET', `${what}: environment variable ${envName} is not set`);
    return v.trim();
  }
  throw new PortcullisError('PCL_ERR_FWD_SECRET', `${what}: neither a file nor an environment variable is given`);
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeKey(text: string, what: string): Buffer {
  if (!BASE64.test(text) || text.length % 4 !== 0) throw new PortcullisError('PCL_ERR_FWD_SECRET', `${what}: not a base64 workspace key`);
  return Buffer.from(text, 'base64');
}

export function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Thumbprints compare as lower-case hex without colons. */
export function normalizeThumbprint(t: string): string {
  return t.replace(/:/g, '').toLowerCase();
}

/**
 * Subjects compare as a set of attributes: spacing, attribute-name case and order do not matter
 * (tools print RDNs in opposite orders: OpenSSL/Node leaf-last, Windows leaf-first).
 */
export function normalizeSubject(s: string): string {
  return s
    .split(/\s*[,/\n]\s*/)
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? p.trim() : `${p.slice(0, eq).trim().toUpperCase()}=${p.slice(eq + 1).trim()}`;
    })
    .sort()
    .join(', ');
}

type Issue = { path: Array<string | number>; message: string };

/** Semantic checks of the forwarder section (config/load SemanticCheck shape). */
export function forwarderConfigCheck(config: PortcullisConfig, env: Env = process.env): Issue[] {
  const f = config.forwarder;
  if (!f) return [];
  const issues: Issue[] = [];
  collect(f, env, issues);
  return issues;
}

/** Compile, or throw a PortcullisError listing every problem. */
export function compileForwarder(f: ForwarderConfig, env: Env = process.env): CompiledForwarder {
  const issues: Issue[] = [];
  const compiled = collect(f, env, issues);
  if (issues.length > 0 || !compiled) {
    const text = issues.map((i) => `forwarder.${i.path.join('.')}: ${i.message}`).join('; ');
    throw new PortcullisError('PCL_ERR_CONFIG', `invalid forwarder configuration: ${text}`);
  }
  return compiled;
}

function readable(file: string): string | null {
  try {
    accessSync(file, constants.R_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${file}: no such file` : `${file}: not readable (${code ?? 'error'})`;
  }
}

function collect(f: ForwarderConfig, env: Env, issues: Issue[]): CompiledForwarder | null {
  const at = (...path: Array<string | number>): Array<string | number> => ['forwarder', ...path];
  const push = (path: Array<string | number>, message: string): void => void issues.push({ path, message });

  if (!f.plaintext && !f.tls) push(at('tls'), 'required unless plaintext: true (the ingest listener serves HTTPS by default)');
  for (const key of ['certFile', 'keyFile', 'clientCaFile'] as const) {
    const file = f.tls?.[key];
    const why = file === undefined ? null : readable(file);
    if (why) push(at('tls', key), why);
  }
  if (f.upstream.caFile !== undefined) {
    const why = readable(f.upstream.caFile);
    if (why) push(at('upstream', 'caFile'), why);
  }
  if (f.upstream.retry.maxMs < f.upstream.retry.baseMs) push(at('upstream', 'retry', 'maxMs'), 'must be at least retry.baseMs');

  const dupes = (list: Array<{ name: string }>, key: string): void => {
    const seen = new Map<string, number>();
    list.forEach((x, i) => {
      const prev = seen.get(x.name);
      if (prev !== undefined) push(at(key, i, 'name'), `duplicate name "${x.name}" (also ${key}[${prev}])`);
      else seen.set(x.name, i);
    });
  };
  dupes(f.credentials, 'credentials');
  dupes(f.destinations, 'destinations');
  dupes(f.routes, 'routes');
  dupes(f.identities, 'identities');

  const credentials = new Map(f.credentials.map((c) => [c.name, c]));
  f.credentials.forEach((c, i) => {
    if (c.type === 'clientSecret') {
      if (!c.tenantId || !c.clientId) push(at('credentials', i), 'clientSecret needs tenantId and clientId');
      if (c.secretFile !== undefined && c.secretEnv !== undefined) push(at('credentials', i, 'secretEnv'), 'give only one of secretFile, secretEnv');
      else if (c.secretFile) {
        const why = readable(c.secretFile);
        if (why) push(at('credentials', i, 'secretFile'), why);
      } else if (c.secretEnv) {
        if (!env[c.secretEnv]?.trim()) push(at('credentials', i, 'secretEnv'), `environment variable ${c.secretEnv} is not set (PCL_ERR_SECRET_ENV)`);
      } else {
        push(at('credentials', i), 'clientSecret needs secretFile or secretEnv (the file is read again at every token refresh, so rotation needs no restart)');
      }
    } else if (c.type === 'clientCertificate') {
      if (!c.tenantId || !c.clientId) push(at('credentials', i), 'clientCertificate needs tenantId and clientId');
      if (!c.certificateFile) push(at('credentials', i), 'clientCertificate needs certificateFile');
      else {
        const why = readable(c.certificateFile);
        if (why) push(at('credentials', i, 'certificateFile'), why);
      }
    }
  });

  const destinations = new Map<string, Destination>();
  f.destinations.forEach((d, i) => {
    const dest = compileDestination(d, credentials, env, (path, msg) => push(at('destinations', i, ...path), msg));
    if (dest) destinations.set(d.name, dest);
  });

  const routes = new Map<string, Route>();
  const liRoutes = new Map<string, Route>();
  const dcRoutes = new Map<string, Route>();
  f.routes.forEach((r, i) => {
    const dest = destinations.get(r.to);
    if (!dest) {
      if (!f.destinations.some((d) => d.name === r.to)) push(at('routes', i, 'to'), `no destination named "${r.to}"`);
      return;
    }
    const from = r.from as { dcrId?: string; stream?: string; workspaceId?: string; logType?: string };
    const isLi = from.dcrId !== undefined || from.stream !== undefined;
    const isDc = from.workspaceId !== undefined || from.logType !== undefined;
    if (isLi === isDc || (isLi && (!from.dcrId || !from.stream)) || (isDc && (!from.workspaceId || !from.logType))) {
      push(at('routes', i, 'from'), 'must be either {dcrId, stream} (Logs Ingestion API) or {workspaceId, logType} (Data Collector API)');
      return;
    }
    let route: Route;
    if (isLi) {
      if (dest.type !== 'logsIngestion') {
        push(at('routes', i, 'to'), `a Logs Ingestion upload cannot go to the dataCollector destination "${dest.name}"`);
        return;
      }
      route = { name: r.name, inbound: 'logsIngestion', destination: dest, upstream: r.stream ?? (from.stream as string), translate: false };
      const key = `${from.dcrId as string}\u0000${from.stream as string}`;
      if (liRoutes.has(key)) push(at('routes', i, 'from'), `another route already takes dcrId ${from.dcrId as string} stream ${from.stream as string}`);
      liRoutes.set(key, route);
    } else {
      const translate = dest.type === 'logsIngestion';
      if (translate && !r.stream) {
        push(
          at('routes', i, 'stream'),
          `required: the upstream stream (like Custom-${from.logType as string}_CL) that Log-Type ${from.logType as string} is translated to`,
        );
        return;
      }
      if (!translate && r.stream !== undefined)
        push(at('routes', i, 'stream'), 'only for logsIngestion destinations (a dataCollector destination keeps the Log-Type)');
      route = { name: r.name, inbound: 'dataCollector', destination: dest, upstream: translate ? (r.stream as string) : (from.logType as string), translate };
      const key = `${(from.workspaceId as string).toLowerCase()}\u0000${from.logType as string}`;
      if (dcRoutes.has(key))
        push(at('routes', i, 'from'), `another route already takes workspace ${from.workspaceId as string} Log-Type ${from.logType as string}`);
      dcRoutes.set(key, route);
    }
    routes.set(r.name, route);
  });

  const identities: Identity[] = [];
  f.identities.forEach((id, i) => {
    const kinds = [id.apiKeySha256, id.sharedKey, id.clientCert].filter((x) => x !== undefined).length;
    if (kinds === 0) push(at('identities', i), 'needs apiKeySha256, sharedKey or clientCert');
    id.routes.forEach((name, j) => {
      if (!f.routes.some((r) => r.name === name)) push(at('identities', i, 'routes', j), `no route named "${name}"`);
    });
    let sharedKey: Identity['sharedKey'] = null;
    if (id.sharedKey) {
      try {
        const text = readSecret(id.sharedKey.keyFile, id.sharedKey.keyEnv, env, 'workspace key');
        sharedKey = { workspaceId: id.sharedKey.workspaceId.toLowerCase(), key: decodeKey(text, 'workspace key') };
      } catch (err) {
        push(at('identities', i, 'sharedKey'), (err as Error).message);
      }
      for (const name of id.routes) {
        const route = routes.get(name);
        if (route && route.inbound !== 'dataCollector')
          push(at('identities', i, 'routes'), `route "${name}" is a Logs Ingestion route; a sharedKey identity can only use Data Collector routes`);
      }
    }
    if (id.clientCert) {
      if (!f.tls?.clientCaFile) push(at('identities', i, 'clientCert'), 'needs forwarder.tls.clientCaFile (the CA client certificates are checked against)');
      if (!id.clientCert.subjects?.length && !id.clientCert.thumbprintsSha256?.length)
        push(at('identities', i, 'clientCert'), 'needs subjects or thumbprintsSha256');
    }
    identities.push({
      name: id.name,
      apiKeyHash: id.apiKeySha256 ? Buffer.from(id.apiKeySha256, 'hex') : null,
      sharedKey,
      certSubjects: new Set((id.clientCert?.subjects ?? []).map(normalizeSubject)),
      certThumbprints: new Set((id.clientCert?.thumbprintsSha256 ?? []).map(normalizeThumbprint)),
      routes: new Set(id.routes),
    });
  });
  if (issues.length > 0) return null;
  return { destinations, routes, identities, liRoutes, dcRoutes };
}

function compileDestination(
  d: ForwarderDestinationConfig,
  credentials: ReadonlyMap<string, ForwarderCredentialConfig>,
  env: Env,
  push: (path: Array<string | number>, msg: string) => void,
): Destination | null {
  const url = (text: string | undefined, key: string): URL | null => {
    if (text === undefined) return null;
    try {
      const u = new URL(text);
      if (u.protocol !== 'https:') push([key], 'must be an https:// URL');
      else if (u.pathname !== '/' || u.search) push([key], 'must be the origin only (https://host[:port]), without a path');
      else return u;
    } catch {
      push([key], `${JSON.stringify(text)} is not a URL`);
    }
    return null;
  };
  // Absent, not undefined, when the config leaves it out (batch.ordered applies).
  const ordered = d.ordered !== undefined ? { ordered: d.ordered } : {};
  if (d.type === 'logsIngestion') {
    if (!d.endpoint || !d.dcrId || !d.credential) {
      push([], 'a logsIngestion destination needs endpoint, dcrId and credential');
      return null;
    }
    const endpoint = url(d.endpoint, 'endpoint');
    const credential = credentials.get(d.credential);
    if (!credential) push(['credential'], `no credential named "${d.credential}"`);
    if (!endpoint || !credential) return null;
    return { name: d.name, type: 'logsIngestion', endpoint, dcrId: d.dcrId, credential, ...ordered };
  }
  if (!d.workspaceId) {
    push([], 'a dataCollector destination needs workspaceId');
    return null;
  }
  const endpoint = d.endpoint !== undefined ? url(d.endpoint, 'endpoint') : new URL(`https://${d.workspaceId.toLowerCase()}.ods.opinsights.azure.com`);
  let key: Buffer | null = null;
  try {
    key = decodeKey(readSecret(d.sharedKeyFile, d.sharedKeyEnv, env, 'workspace key'), 'workspace key');
  } catch (err) {
    push([d.sharedKeyFile !== undefined ? 'sharedKeyFile' : 'sharedKeyEnv'], (err as Error).message);
  }
  if (!endpoint || !key) return null;
  return { name: d.name, type: 'dataCollector', endpoint, workspaceId: d.workspaceId.toLowerCase(), key, ...ordered };
}

/**
 * Digests of recently seen bearer tokens: an agent sends the same key with every upload, and
 * hashing it each time cost ~4% of the ingest's main thread under load. Bounded (cleared when
 * full, long tokens never kept) so random tokens cannot grow it; a hit only skips the hash, the
 * comparison below stays constant time.
 */
const tokenDigests = new Map<string, Buffer>();
const TOKEN_DIGESTS_MAX = 256;
const TOKEN_CACHE_MAX_CHARS = 512;

function tokenDigest(token: string): Buffer {
  const cached = tokenDigests.get(token);
  if (cached) return cached;
  const h = sha256(token);
  if (token.length <= TOKEN_CACHE_MAX_CHARS) {
    if (tokenDigests.size >= TOKEN_DIGESTS_MAX) tokenDigests.clear();
    tokenDigests.set(token, h);
  }
  return h;
}

/** The identity whose API key hashes to sha256(token); every identity is compared (constant time). */
export function identityByApiKey(identities: readonly Identity[], token: string): Identity | null {
  const h = tokenDigest(token);
  let found: Identity | null = null;
  for (const id of identities) {
    if (id.apiKeyHash && id.apiKeyHash.length === h.length && timingSafeEqual(id.apiKeyHash, h) && !found) found = id;
  }
  return found;
}

export function identityByCert(identities: readonly Identity[], subject: string, thumbprint: string): Identity | null {
  const s = normalizeSubject(subject);
  const t = normalizeThumbprint(thumbprint);
  return identities.find((id) => id.certSubjects.has(s) || id.certThumbprints.has(t)) ?? null;
}

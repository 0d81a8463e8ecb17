/**
 * A ForwarderService in this process with the real spool, pool, sender and ingest listener (TLS
 * with the test CA), forwarding to the Azure Monitor emulator through the policy-vetted connector
 * (allow rule + dns.overrides to 127.0.0.1, like an operator's config).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent as HttpsAgent } from 'node:https';
import client from 'prom-client';
import { stringify } from 'yaml';
import { parseConfig, type PortcullisConfig } from '../../src/config/index.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { createForwarderService, forwarderConfigCheck, sha256, type ForwarderService } from '../../src/forwarder/index.js';
import { testCA } from '../helpers/tls.js';
import { LogsIngestionClient } from '@azure/monitor-ingestion';
import { emulatorAgent } from '../emulator/clients.js';
import { AzureMonitorEmulator, type AcceptedRecord, type RecordQuery } from '../emulator/emulator.js';
import { makeRecords, type AgentRecord as BenchRecord } from '../../bench/lib/records.mjs';

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT = '11111111-2222-3333-4444-555555555555';
export const SECRET = 'forwarder-test-secret';
/** Upstream DCR (the emulator's) and the inbound one clients post to (the gateway's). */
export const DCR_UP = 'dcr-00000000000000000000000000000aaa';
export const DCR_IN = 'dcr-gateway-in';
export const STREAM = 'Custom-App_CL';
export const FW_STREAM = 'Custom-FirewallX_CL';
export const WS_IN = '11111111-1111-1111-1111-111111111111';
export const WS_UP = '22222222-2222-2222-2222-222222222222';
export const API_KEY = 'pcl_test_api_key_0123456789abcdef';
export const OTHER_KEY = 'pcl_other_key_only_fw';

export interface Fixture {
  emu: AzureMonitorEmulator;
  service: ForwarderService;
  config: PortcullisConfig;
  registry: client.Registry;
  /** https://127.0.0.1:<port> */
  url: string;
  /** Trusts the test CA. */
  agent: HttpsAgent;
  /** PEM of the CA that issued the ingest listener's certificate (for more client agents). */
  caPem: string;
  /** Inbound workspace key Data Collector clients sign with. */
  inboundKey: string;
  dir: string;
  logger: Logger;
  /** Start a fresh service on the same spool directory (after stop). */
  restart(): Promise<void>;
  stop(deadlineMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  forwarder?: Record<string, unknown>;
  emulator?: AzureMonitorEmulator;
  /** Top-level keys added to the gateway config (e.g. upstreamProxy). */
  extra?: () => Record<string, unknown>;
  /** Keys added to destinations by name (e.g. `{ 'dcr-main': { ordered: false } }`). */
  destinations?: Record<string, Record<string, unknown>>;
}

/** Emulator registrations, key and certificate files, and the config both kinds of fixture run. */
export interface ForwarderSetup {
  emu: AzureMonitorEmulator;
  dir: string;
  /** PEM of the CA that issued the ingest listener's certificate. */
  caPem: string;
  /** Inbound workspace key Data Collector clients sign with. */
  inboundKey: string;
  /** The whole gateway config (allow rule + dns.overrides for the emulator hosts, forwarder). */
  config: Record<string, unknown>;
}

export async function prepareForwarder(emu: AzureMonitorEmulator, opts: Pick<FixtureOptions, 'forwarder' | 'destinations'> = {}): Promise<ForwarderSetup> {
  emu.addApp({ tenantId: TENANT, clientId: CLIENT, secrets: [SECRET] });
  emu.addDcr({ immutableId: DCR_UP, streams: [STREAM, FW_STREAM], allowedClientIds: [CLIENT] });
  const upstreamWs = emu.addWorkspace({ workspaceId: WS_UP });

  const dir = mkdtempSync(join(tmpdir(), 'portcullis-fwd-'));
  const ca = await testCA();
  const leaf = await ca.issue(['localhost', '127.0.0.1']);
  writeFileSync(join(dir, 'ingest.crt'), leaf.certPem);
  writeFileSync(join(dir, 'ingest.key'), leaf.keyPem);
  const inboundKey = Buffer.from('gateway-inbound-workspace-key-for-tests-0123456789').toString('base64');
  writeFileSync(join(dir, 'inbound.key'), inboundKey);
  writeFileSync(join(dir, 'upstream-ws.key'), upstreamWs.sharedKey);
  writeFileSync(join(dir, 'secret'), SECRET);
  const dce = new URL(emu.logsIngestionEndpoint());
  const ods = new URL(emu.dataCollectorEndpoint(WS_UP));
  const forwarder = {
    listen: '127.0.0.1:0',
    tls: { certFile: join(dir, 'ingest.crt'), keyFile: join(dir, 'ingest.key'), clientCaFile: ca.caFile },
    spool: { dir: join(dir, 'spool'), fsync: 'always' },
    deadLetterDir: join(dir, 'dead-letter'),
    batch: { maxAgeMs: 1_000 },
    pool: { threads: 2 },
    limits: { bodyIdleMs: 1_000 },
    upstream: { caFile: emu.caFile, authorityHost: emu.authorityHost, retry: { baseMs: 50, maxMs: 500 } },
    credentials: [{ name: 'main', type: 'clientSecret', tenantId: TENANT, clientId: CLIENT, secretFile: join(dir, 'secret') }],
    destinations: [
      { name: 'dcr-main', type: 'logsIngestion', endpoint: dce.origin, dcrId: DCR_UP, credential: 'main' },
      { name: 'ws-legacy', type: 'dataCollector', workspaceId: WS_UP, sharedKeyFile: join(dir, 'upstream-ws.key'), endpoint: ods.origin },
    ],
    routes: [
      { name: 'app', from: { dcrId: DCR_IN, stream: STREAM }, to: 'dcr-main' },
      { name: 'fw', from: { workspaceId: WS_IN, logType: 'FirewallX' }, to: 'dcr-main', stream: FW_STREAM },
      { name: 'raw', from: { workspaceId: WS_IN, logType: 'Raw' }, to: 'ws-legacy' },
    ],
    identities: [
      { name: 'app-servers', apiKeySha256: sha256(API_KEY).toString('hex'), routes: ['app'] },
      { name: 'firewalls', sharedKey: { workspaceId: WS_IN, keyFile: join(dir, 'inbound.key') }, routes: ['fw', 'raw'] },
      { name: 'fw-only', apiKeySha256: sha256(OTHER_KEY).toString('hex'), routes: ['fw'] },
      { name: 'agents', clientCert: { subjects: ['CN=agent-1, O=Contoso'] }, routes: ['app'] },
    ],
  };
  for (const d of forwarder.destinations as Array<Record<string, unknown>>) Object.assign(d, opts.destinations?.[String(d['name'])] ?? {});
  // Overrides merge one level deep: `{ upstream: { maxConcurrency: 1 } }` keeps the emulator's CA.
  for (const [key, value] of Object.entries(opts.forwarder ?? {})) {
    const base = (forwarder as Record<string, unknown>)[key];
    const both = isPlainObject(base) && isPlainObject(value);
    (forwarder as Record<string, unknown>)[key] = both ? { ...base, ...value } : value;
  }
  const config = {
    allow: {
      presets: [],
      rules: [
        {
          name: 'emulator',
          hosts: ['*.ingest.monitor.azure.com', '*.ods.opinsights.azure.com', 'login.microsoftonline.com'],
          ports: [emu.port],
          allowPrivate: true,
        },
      ],
    },
    dns: { overrides: { [dce.hostname]: '127.0.0.1', [ods.hostname]: '127.0.0.1', [new URL(emu.authorityHost).hostname]: '127.0.0.1' } },
    log: { level: process.env.FWD_TEST_LOG ?? 'silent', access: false },
    forwarder,
  };
  return { emu, dir, caPem: ca.caPem, inboundKey, config };
}

export async function startFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const emu = opts.emulator ?? (await AzureMonitorEmulator.start());
  const {
    dir,
    caPem,
    inboundKey,
    config: raw,
  } = await prepareForwarder(emu, {
    ...(opts.forwarder ? { forwarder: opts.forwarder } : {}),
    ...(opts.destinations ? { destinations: opts.destinations } : {}),
  });
  const config = parseConfig(stringify({ ...raw, ...opts.extra?.() }), { source: 'test', checks: [(c) => forwarderConfigCheck(c, {})], env: {} });
  const { logger } = createLogger({ level: config.log.level }, { dest: 2 });
  let registry = new client.Registry();

  // The real Entra provider: tokens come from the emulator's authority through the vetted connector.
  const make = (): ForwarderService => createForwarderService(config, logger, registry, { env: {} });
  let service = make();
  await service.start();
  const fixture: Fixture = {
    emu,
    service,
    config,
    registry,
    url: `https://127.0.0.1:${service.address?.port ?? 0}`,
    agent: emulatorAgent({ caPem, loopback: false }),
    caPem,
    inboundKey,
    dir,
    logger,
    async restart() {
      registry = new client.Registry();
      fixture.registry = registry;
      service = make();
      fixture.service = service;
      await service.start();
      fixture.url = `https://127.0.0.1:${service.address?.port ?? 0}`;
    },
    stop: (deadlineMs = 5_000) => service.drain(deadlineMs),
    async close() {
      await service.drain(2_000).catch(() => undefined);
      fixture.agent.destroy();
      if (!opts.emulator) await emu.close();
    },
  };
  return fixture;
}

/** A realistic agent event (~460 bytes of JSON; bench/lib/records.mjs): RecordId is unique per run. */
export type AgentRecord = BenchRecord;

/** `count` realistic records numbered from `from`, ids `<runId>-<n>` (the bench's own generator). */
export function realisticRecords(count: number, from = 0, runId = 'test'): AgentRecord[] {
  return makeRecords(count, from, runId);
}

/** Logs Ingestion upload URL of the gateway's inbound route. */
export function ingestUrl(fx: Pick<Fixture, 'url'>, dcr = DCR_IN, stream = STREAM): string {
  return `${fx.url}/dataCollectionRules/${dcr}/streams/${stream}?api-version=2023-01-01`;
}

/** The official SDK pointed at the gateway, with a "credential" that hands out a gateway API key. */
export function sdkClient(fx: Pick<Fixture, 'url' | 'agent'>, key = API_KEY, extra: { maxRetries?: number } = {}): LogsIngestionClient {
  const credential = { getToken: async () => ({ token: key, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  return new LogsIngestionClient(fx.url, credential, { agent: fx.agent, retryOptions: { maxRetries: extra.maxRetries ?? 0 } });
}

/**
 * Waits (woken by the emulator, no polling) until every id in `ids` has arrived for `query`, or
 * `timeoutMs` passes; returns the matching accepted records either way (the caller asserts).
 * `idOf` reads a record's id (default: RecordId, then Id).
 */
export async function waitForIds(
  emu: AzureMonitorEmulator,
  query: RecordQuery,
  ids: ReadonlySet<string>,
  timeoutMs = 30_000,
  idOf: (r: unknown) => string | undefined = defaultId,
): Promise<AcceptedRecord[]> {
  const mine = (): AcceptedRecord[] => emu.records(query).filter((r) => ids.has(idOf(r.record) ?? ''));
  const present = (): number => new Set(mine().map((r) => idOf(r.record))).size;
  const deadline = Date.now() + timeoutMs;
  while (present() < ids.size && Date.now() < deadline) {
    await emu.waitForRecords(query, emu.records(query).length + 1, Math.max(1, deadline - Date.now())).catch(() => undefined);
  }
  return mine();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function defaultId(r: unknown): string | undefined {
  if (typeof r !== 'object' || r === null) return undefined;
  const o = r as { RecordId?: unknown; Id?: unknown };
  return typeof o.RecordId === 'string' ? o.RecordId : typeof o.Id === 'string' ? o.Id : undefined;
}

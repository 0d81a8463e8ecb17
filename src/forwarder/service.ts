/**
 * ForwarderService: the forwarder as one Service of the gateway's main process (the single
 * process, or the cluster supervisor; never a data-plane worker: the spool has one writer).
 *
 *   start   compile routes -> open the spool (replay) -> pool -> sender -> batcher -> ingest listener
 *   drain   stop ingest (in-flight uploads are spooled and answered) -> stop the batcher (in-flight
 *           batches until the deadline) -> close sender, spool, pool. Unsent data stays spooled.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import type { ForwarderConfig, PortcullisConfig } from '../config/types.js';
import { parseListenAddress } from '../config/listen.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { compilePolicy, type Policy } from '../policy/index.js';
import { RelayHealth, Resolver } from '../dial/index.js';
import { buildRelays, logRelayEvent, type RelaySetup } from '../proxy/relays.js';
import { Batcher } from './batcher.js';
import { ForwarderMetrics } from './metrics.js';
import { ForwarderPool, sealedCheckTask, sealedRecords } from './pool/index.js';
import { LOGS_INGESTION_MAX_BYTES, compileForwarder, streamKey, type CompiledForwarder, type Env, type LogsIngestionDestination } from './routes.js';
import type { SpoolPort } from './spool-port.js';
import { ServiceStartError } from '../gateway/errors.js';
import type { Readiness, Service } from '../gateway/service.js';
import { startIngest, type IngestServer } from './ingest/server.js';
import type { SharedKeyVerifier } from './ingest/auth.js';
import { upstreamConnector, vettedHttpsAgent } from './upstream/connect.js';
import { EntraTokenProvider } from './upstream/entra.js';
import { Sender, type DataCollectorSigner, type TokenSource } from './upstream/sender.js';

export interface SpoolOpenOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsync: ForwarderConfig['spool']['fsync'];
  fsyncIntervalMs: number;
  logger: Logger;
}

/**
 * The seam other parts of the gateway feed the forwarder's pipeline through (the syslog
 * collector): records for a destination stream go into the same spool, batcher, gzip, sender,
 * retries and dead letters as uploads do.
 */
export interface RecordIntake {
  /** True when `name` is a logsIngestion destination of the running configuration. */
  isLogsIngestionDestination(name: string): boolean;
  /**
   * Queues entries (JSON records joined by ',', each at most entryMaxBytes()) for `stream` of
   * `destination`; the spool writes them in call order. null when the spool has no room (nothing
   * queued: wait for hasRoom() before queueing anything after them, to keep the order); else a
   * promise that resolves once they are durable per spool.fsync, and rejects with
   * PCL_ERR_SPOOL_CLOSED when stopping, PCL_ERR_SPOOL_IO on a disk error.
   */
  enqueue(destination: string, stream: string, entries: ReadonlyArray<{ records: number; payload: Uint8Array; deflated?: boolean }>): Promise<void> | null;
  /** The level entries are deflated at (deflated entries: payloads that are pool/gzip.ts deflateRun outputs). */
  deflateLevel(): number;
  /** The spool is below its maxBytes. */
  hasRoom(): boolean;
  /** Largest entry payload: one entry must fit one upstream batch with its brackets. */
  entryMaxBytes(): number;
  /** Runs the default export of a compiled worker module in the forwarder's pool threads. */
  runInPool<T, R>(filename: string, task: T, transferList?: ArrayBuffer[]): Promise<R>;
  /** Pool threads. */
  readonly threads: number;
  /**
   * `hook` runs at the start of the forwarder's drain, before the spool closes (a collector
   * stops its listeners and spools what it already read).
   */
  beforeDrain(hook: (deadlineMs: number) => Promise<void>): void;
}

export interface ForwarderServiceOptions {
  config: PortcullisConfig;
  logger: Logger;
  /** Where portcullis_forwarder_* metrics go; null = none. */
  registry: Registry | null;
  openSpool: (opts: SpoolOpenOptions) => Promise<SpoolPort>;
  /** Entra token source for a Logs Ingestion destination; default upstream/entra.ts over the vetted connector. */
  tokenSource?: (destination: LogsIngestionDestination, config: ForwarderConfig) => TokenSource;
  sign: DataCollectorSigner;
  verify: SharedKeyVerifier;
  env?: Env;
}

export class ForwarderService implements Service {
  readonly name = 'forwarder';
  #config: PortcullisConfig;
  #fwd: ForwarderConfig;
  #compiled: CompiledForwarder | null = null;
  #policy: Policy;
  #resolver: Resolver;
  #spool: SpoolPort | null = null;
  #pool: ForwarderPool | null = null;
  /** The check of the sealed entries found on start (Spool.verifyHeld), in the background. */
  #verifying: Promise<unknown> = Promise.resolve();
  #sender: Sender | null = null;
  #batcher: Batcher | null = null;
  #ingest: IngestServer | null = null;
  #metrics: ForwarderMetrics | null = null;
  #tokens = new Map<string, TokenSource & { close?: () => void }>();
  #connector: ReturnType<typeof upstreamConnector> | null = null;
  /** Upstream connections go through the relay proxies too (upstreamProxy), as the Log Analytics gateway sends everything through its relay. */
  readonly #relayHealth = new RelayHealth();
  #relays: RelaySetup | null = null;
  #tokenAgent: import('node:https').Agent | null = null;
  #draining = false;
  #started = false;
  /** Uploads were refused for lack of room until about then: /readyz says so (a balancer can steer away). */
  #shed: { reason: 'spool_full' | 'memory'; until: number } | null = null;

  constructor(private readonly opts: ForwarderServiceOptions) {
    if (!opts.config.forwarder) throw new Error('ForwarderService needs a forwarder section');
    this.#config = opts.config;
    this.#fwd = opts.config.forwarder;
    this.#policy = compilePolicy(opts.config);
    this.#resolver = resolverFor(opts.config);
    this.#relayHealth.listener = (e) => logRelayEvent(opts.logger, e);
    this.#relays = buildRelays(opts.config.upstreamProxy, opts.config.proxy, this.#relayHealth);
  }

  #beforeDrain: Array<(deadlineMs: number) => Promise<void>> = [];

  /** The pipeline's intake for other record sources (after start; null before). */
  intake(): RecordIntake | null {
    const spool = this.#spool;
    const pool = this.#pool;
    if (!spool || !pool || !this.#started) return null;
    return {
      isLogsIngestionDestination: (name) => this.#compiled?.destinations.get(name)?.type === 'logsIngestion',
      enqueue: (destination, stream, entries) =>
        spool
          .tryAppend(
            entries.map((e) => ({
              stream: streamKey(destination, stream),
              records: e.records,
              payload: e.payload,
              ...(e.deflated === true ? { deflated: true } : {}),
            })),
          )
          ?.then(() => undefined) ?? null,
      deflateLevel: () => this.#fwd.batch.gzipLevel,
      hasRoom: () => {
        const s = spool.stats();
        return s.bytes < s.maxBytes;
      },
      entryMaxBytes: () => this.#fwd.batch.maxBytes - 2,
      runInPool: (filename, task, transferList) => pool.runFile(filename, task, transferList ?? []),
      threads: pool.threads,
      beforeDrain: (hook) => void this.#beforeDrain.push(hook),
    };
  }

  /** The ingest listener's bound address (after start). */
  get address(): { host: string; port: number } | null {
    return this.#ingest?.address ?? null;
  }

  get spool(): SpoolPort | null {
    return this.#spool;
  }

  async start(): Promise<void> {
    const { logger } = this.opts;
    const fwd = this.#fwd;
    try {
      this.#compiled = compileForwarder(fwd, this.opts.env ?? process.env);
    } catch (err) {
      throw new ServiceStartError('forwarder', (err as Error).message, err);
    }
    try {
      this.#spool = await this.opts.openSpool({
        dir: fwd.spool.dir,
        maxBytes: fwd.spool.maxBytes,
        segmentBytes: fwd.spool.segmentBytes,
        fsync: fwd.spool.fsync,
        fsyncIntervalMs: fwd.spool.fsyncIntervalMs,
        logger,
      });
    } catch (err) {
      throw new ServiceStartError('forwarder.spool.dir', `cannot open the spool in ${fwd.spool.dir}: ${(err as Error).message}`, err);
    }
    const spool = this.#spool;
    try {
      this.#pool = new ForwarderPool({ threads: fwd.pool.threads });
      const pool = this.#pool;
      if (this.opts.registry) {
        this.#metrics = new ForwarderMetrics(this.opts.registry, {
          spool: () => {
            const s = spool.stats();
            return { ...s, oldestAppendedAt: spool.pending().oldestAppendedAt };
          },
          poolUtilization: () => pool.utilization,
          poolQueued: () => pool.queued,
          concurrency: () => this.#sender?.concurrency() ?? [],
        });
      }
      const extraCa = fwd.upstream.caFile ? readFileSync(fwd.upstream.caFile, 'utf8') : undefined;
      this.#connector = upstreamConnector({
        policy: () => this.#policy,
        resolver: () => this.#resolver,
        relay: () => this.#relays,
        connectTimeoutMs: this.#config.proxy.timeouts.connectMs,
        ...(extraCa ? { extraCa } : {}),
      });
      this.#sender = new Sender({
        config: () => this.#fwd,
        connect: this.#connector,
        tokens: (name) => this.#tokenSource(name),
        sign: this.opts.sign,
        deadLetterDir: fwd.deadLetterDir ?? join(dirname(fwd.spool.dir), 'dead-letter'),
        metrics: this.#metrics,
        logger,
      });
      this.#batcher = new Batcher({
        spool,
        pool,
        sender: this.#sender,
        config: () => this.#fwd,
        routes: () => this.#routes(),
        metrics: this.#metrics,
        logger,
      });
      try {
        this.#ingest = await startIngest({
          config: () => this.#fwd,
          routes: () => this.#routes(),
          pool,
          spool,
          metrics: this.#metrics,
          logger,
          verifySharedKey: this.opts.verify,
          draining: () => this.#draining,
          shed: (reason) => {
            this.#shed = { reason, until: Date.now() + this.#fwd.limits.retryAfterS * 1000 };
          },
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const where = parseListenAddress(fwd.listen);
        const cause =
          code === 'EADDRINUSE'
            ? `address ${fwd.listen} already in use (EADDRINUSE)`
            : code === 'EACCES'
              ? `permission denied binding ${fwd.listen} (EACCES)`
              : `cannot serve on ${where.host}:${where.port}: ${(err as Error).message}`;
        throw new ServiceStartError(code === 'ENOENT' || code === 'ERR_OSSL_PEM_NO_START_LINE' ? 'forwarder.tls' : 'forwarder.listen', cause, err);
      }
      this.#batcher.start();
      // Sealed entries replayed from the spool are held until checked again: one may have been
      // written while its upload was still being checked when the process stopped. Their streams
      // wait behind them (order); everything else flows meanwhile.
      this.#verifying = spool
        .verifyHeld(async (payload) => sealedRecords(await pool.decode(sealedCheckTask(payload, LOGS_INGESTION_MAX_BYTES))))
        .then((r) => {
          if (r.kept + r.dropped + r.failed > 0)
            logger.info({ event: Events.SPOOL_RECOVERED, sealedChecked: r }, 'spool: sealed entries found on start checked');
        });
    } catch (err) {
      await this.#closeAll(0);
      throw err instanceof ServiceStartError ? err : new ServiceStartError('forwarder', (err as Error).message, err);
    }
    this.#started = true;
    logger.info(
      {
        event: Events.FWD_LIFECYCLE,
        listen: this.#ingest?.address,
        tls: !fwd.plaintext,
        spool: { dir: fwd.spool.dir, fsync: fwd.spool.fsync },
        threads: this.#pool?.threads,
        routes: [...(this.#compiled?.routes.keys() ?? [])],
        destinations: [...(this.#compiled?.destinations.keys() ?? [])],
      },
      'forwarder listening',
    );
  }

  /**
   * Routes, identities, destinations, limits, batching and upstream settings apply at once; the
   * listener, TLS, spool and pool settings on restart. An invalid forwarder section is refused
   * (throws) and the running one kept.
   */
  reload(next: PortcullisConfig): void {
    const fwd = next.forwarder;
    if (!fwd) {
      this.opts.logger.warn({ event: Events.FWD_LIFECYCLE }, 'the forwarder section was removed: it stops on restart; running as before until then');
      return;
    }
    const compiled = compileForwarder(fwd, this.opts.env ?? process.env);
    const restartOnly: string[] = [];
    const prev = this.#fwd;
    if (fwd.listen !== prev.listen) restartOnly.push('forwarder.listen');
    if (JSON.stringify(fwd.tls) !== JSON.stringify(prev.tls) || fwd.plaintext !== prev.plaintext) restartOnly.push('forwarder.tls');
    if (JSON.stringify(fwd.spool) !== JSON.stringify(prev.spool)) restartOnly.push('forwarder.spool');
    if (fwd.pool.threads !== prev.pool.threads) restartOnly.push('forwarder.pool');
    if (fwd.upstream.caFile !== prev.upstream.caFile) restartOnly.push('forwarder.upstream.caFile');
    if (restartOnly.length) this.opts.logger.warn({ event: Events.CONFIG_RELOADED, keys: restartOnly }, 'these forwarder settings take effect on restart');
    this.#fwd = {
      ...fwd,
      listen: prev.listen,
      plaintext: prev.plaintext,
      spool: prev.spool,
      pool: prev.pool,
      upstream: { ...fwd.upstream, ...(prev.upstream.caFile ? { caFile: prev.upstream.caFile } : {}) },
      ...(prev.tls ? { tls: prev.tls } : {}),
    };
    this.#config = next;
    this.#compiled = compiled;
    this.#policy = compilePolicy(next);
    this.#resolver = resolverFor(next);
    const oldRelays = this.#relays;
    this.#relays = buildRelays(next.upstreamProxy, next.proxy, this.#relayHealth);
    if (oldRelays) void oldRelays.dialer.close().catch(() => undefined);
    for (const t of this.#tokens.values()) t.close?.();
    this.#tokens.clear();
    this.#batcher?.rescan();
  }

  async drain(deadlineMs: number): Promise<void> {
    const end = Date.now() + deadlineMs;
    this.#draining = true;
    const hooks = this.#beforeDrain.splice(0);
    await Promise.all(hooks.map((h) => h(deadlineMs).catch(() => undefined)));
    await this.#closeAll(deadlineMs, end);
    this.opts.logger.info({ event: Events.FWD_LIFECYCLE, pending: this.#lastPending }, 'forwarder stopped; unsent records stay in the spool');
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (!this.#started) reasons.push('forwarder not started');
    if (this.#draining) reasons.push('forwarder draining');
    const s = this.#spool?.stats();
    if (s && !s.healthy) reasons.push('forwarder spool cannot write (disk error)');
    const shedding = this.#shed !== null && Date.now() < this.#shed.until ? this.#shed.reason : null;
    if ((s && s.bytes >= s.maxBytes) || shedding === 'spool_full') reasons.push('forwarder spool full: uploads are refused');
    const maxRss = this.#fwd.limits.maxRssBytes;
    if ((maxRss > 0 && process.memoryUsage.rss() > maxRss) || shedding === 'memory') reasons.push('forwarder short of memory: uploads are refused');
    return { ready: reasons.length === 0, reasons };
  }

  #lastPending: { entries: number; bytes: number } | null = null;

  async #closeAll(deadlineMs: number, end = Date.now() + deadlineMs): Promise<void> {
    const left = (): number => Math.max(0, end - Date.now());
    // Uploads already being read are spooled and answered; new ones get 503 (draining).
    if (this.#ingest) await withDeadline(this.#ingest.close(), left() + 1_000);
    this.#ingest = null;
    if (this.#batcher) await this.#batcher.stop(left());
    this.#batcher = null;
    if (this.#sender) await this.#sender.close();
    this.#sender = null;
    if (this.#spool) {
      const p = this.#spool.pending();
      this.#lastPending = { entries: p.entries, bytes: p.bytes };
      await this.#spool.close();
      await this.#verifying;
    }
    this.#spool = null;
    if (this.#pool) await this.#pool.close();
    this.#pool = null;
    for (const t of this.#tokens.values()) t.close?.();
    this.#tokens.clear();
    this.#tokenAgent?.destroy();
    this.#tokenAgent = null;
  }

  #routes(): CompiledForwarder {
    if (!this.#compiled) throw new Error('forwarder not started');
    return this.#compiled;
  }

  #tokenSource(destination: string): TokenSource | undefined {
    let t = this.#tokens.get(destination);
    if (t) return t;
    const dest = this.#compiled?.destinations.get(destination);
    if (dest?.type !== 'logsIngestion') return undefined;
    t = this.opts.tokenSource ? this.opts.tokenSource(dest, this.#fwd) : this.#entra(dest);
    this.#tokens.set(destination, t);
    return t;
  }

  /** @azure/identity through the vetted connector (the authority host must be allowed, like any upstream). */
  #entra(dest: LogsIngestionDestination): TokenSource & { close: () => void } {
    if (!this.#connector) throw new Error('forwarder not started');
    this.#tokenAgent ??= vettedHttpsAgent(this.#connector);
    const provider = new EntraTokenProvider({
      credential: dest.credential,
      authorityHost: this.#fwd.upstream.authorityHost,
      agent: this.#tokenAgent,
      onFailure: (e) => {
        this.#metrics?.tokenFailures.inc({ destination: dest.name });
        this.opts.logger.warn(
          { event: Events.FWD_TOKEN_REFRESH, destination: dest.name, credential: e.credential, err: e.error },
          'Entra token request failed',
        );
      },
    });
    return {
      getToken: (force) => (force ? provider.forceRefresh() : provider.getToken()),
      close: () => provider.close(),
    };
  }
}

function resolverFor(config: PortcullisConfig): Resolver {
  return new Resolver({ overrides: config.dns.overrides, timeoutMs: config.proxy.timeouts.dnsMs, cacheTtlMs: config.dns.cacheTtlMs });
}

async function withDeadline(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/**
 * From framed blocks to the spool, per source (a TCP/TLS connection, or a UDP listener): blocks
 * are parsed in the forwarder's pool threads (several at once), and spooled in the order they
 * were read. A source holds at most MAX_INFLIGHT blocks; past that it is told to stop reading
 * (TCP flow control pushes back on the sender). A full spool is waited out, never dropped: the
 * block is kept and appended again once the spool has room, also after the sender has closed its
 * connection (what was read was acknowledged to it by TCP); only the gateway stopping ends the wait.
 */
import { hostname } from 'node:os';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { ForwarderErrors, type RecordIntake } from '../forwarder/index.js';
import type { ParseBlock, ParseResult, ParseTask } from './parse/task.js';
import type { SyslogRoutes } from './routes.js';
import type { SyslogMetrics } from './metrics.js';
import { ownArrayBuffer } from '../util/buffers.js';

/** Blocks of one source in the pool or waiting for the spool before the source stops reading. */
export const MAX_INFLIGHT = 4;
/**
 * Spool entries close past this much JSON. An entry is never split across upstream batches, so
 * with entries of a few hundred KB a 1 MiB batch went out ~70% full (measured); smaller ones fill
 * it better. Each entry is compressed on its own, so smaller ones compress worse (CEF records at
 * libdeflate level 1: 7.6 at 64 KiB, 8.3 at 128 KiB, 9.1 for a whole 1 MiB batch).
 */
export const ENTRY_TARGET_BYTES = 128 * 1024;
/** How often a source held back by a full spool looks again. */
const ROOM_POLL_MS = 200;
const LOG_EVERY_MS = 60_000;

export interface PipelineDeps {
  intake: RecordIntake;
  routes: () => SyslogRoutes;
  workerFile: string;
  metrics: SyslogMetrics | null;
  logger: Logger;
}

/** Logs a recurring condition at most once a minute, with the count since the last line. */
export class RateLimitedLog {
  #last = 0;
  #count = 0;
  constructor(
    private readonly logger: Logger,
    private readonly event: number,
    private readonly msg: string,
    private readonly level: 'warn' | 'error' | 'info' = 'warn',
  ) {}
  hit(n: number, fields: Record<string, unknown>): void {
    this.#count += n;
    const now = Date.now();
    if (now - this.#last < LOG_EVERY_MS) return;
    this.#last = now;
    this.logger[this.level]({ event: this.event, count: this.#count, ...fields }, this.msg);
    this.#count = 0;
  }
}

export class Pipeline {
  readonly collector = hostname();
  #waiters: Array<() => void> = [];
  #roomTimer: NodeJS.Timeout | null = null;
  readonly #parseFailures: RateLimitedLog;
  readonly #unrouted: RateLimitedLog;
  readonly #backpressure: RateLimitedLog;

  constructor(private readonly deps: PipelineDeps) {
    this.#parseFailures = new RateLimitedLog(deps.logger, Events.SYSLOG_PARSE_FAILURE, 'syslog messages did not parse: kept as raw Syslog records', 'info');
    this.#unrouted = new RateLimitedLog(deps.logger, Events.SYSLOG_UNROUTED, 'syslog messages matched no route: not kept');
    this.#backpressure = new RateLimitedLog(deps.logger, Events.SYSLOG_BACKPRESSURE, 'spool full: syslog connections stop reading until there is room');
  }

  get intake(): RecordIntake {
    return this.deps.intake;
  }

  /** Parses blocks (one listener) in a pool thread. */
  parse(listener: string, blocks: ParseBlock[]): Promise<ParseResult> {
    const transfer: ArrayBuffer[] = [];
    for (const b of blocks) {
      const buf = ownArrayBuffer(b.bytes);
      if (buf) transfer.push(buf);
    }
    const task: ParseTask = {
      kind: 'syslog-parse',
      blocks,
      routes: this.deps.routes().specs,
      receivedAt: new Date().toISOString(),
      collector: this.collector,
      entryMaxBytes: this.deps.intake.entryMaxBytes(),
      entryTargetBytes: ENTRY_TARGET_BYTES,
      deflateLevel: this.deps.intake.deflateLevel(),
    };
    void listener;
    return this.deps.intake.runInPool<ParseTask, ParseResult>(this.deps.workerFile, task, transfer);
  }

  /**
   * Counts a parse result and queues its entries for the spool, in order; waits (paused) while the
   * spool is full, until `isStopping()` (the gateway's drain deadline passed). Resolves once
   * everything is queued, to `durable`: true when every record meant to be kept is durable
   * (filtered and unrouted ones are not meant to be). Never rejects.
   * `senderResends` (RELP): what is not kept is not acknowledged either, so it is not lost: not counted as dropped.
   */
  async enqueue(
    listener: string,
    result: ParseResult,
    onFull: () => void,
    isStopping: () => boolean,
    senderResends = false,
  ): Promise<{ durable: Promise<boolean> }> {
    const { metrics } = this.deps;
    const c = result.counts;
    if (metrics) {
      for (const format of ['rfc5424', 'rfc3164', 'cef', 'raw'] as const) if (c[format] > 0) metrics.messages.inc({ listener, format }, c[format]);
      if (c.parseFailures) metrics.parseFailures.inc({ listener }, c.parseFailures);
      if (c.invalidUtf8) metrics.invalidUtf8.inc({ listener }, c.invalidUtf8);
      if (c.filtered) metrics.filtered.inc({ listener }, c.filtered);
      if (c.unrouted) metrics.unrouted.inc({ listener }, c.unrouted);
    }
    if (c.parseFailures) this.#parseFailures.hit(c.parseFailures, { listener });
    if (c.unrouted) this.#unrouted.hit(c.unrouted, { listener });
    const routes = this.deps.routes().routes;
    const writes: Array<Promise<boolean>> = [];
    for (const out of result.outputs) {
      const route = routes[out.route];
      if (!route || out.entries.length === 0) continue;
      for (;;) {
        const queued = this.deps.intake.enqueue(route.destination, route.stream, out.entries);
        if (queued) {
          writes.push(
            queued.then(
              () => {
                metrics?.records.inc({ route: route.name, destination: route.destination, stream: route.stream }, out.records);
                return true;
              },
              (err: unknown) => this.#notKept(listener, route.name, out.records, err, senderResends),
            ),
          );
          break;
        }
        if (!isStopping()) {
          metrics?.backpressure.inc({ listener });
          this.#backpressure.hit(1, { listener });
          onFull();
          await this.waitForRoom();
          continue;
        }
        // The drain deadline passed with the spool still full.
        writes.push(Promise.resolve(this.#notKept(listener, route.name, out.records, null, senderResends)));
        break;
      }
    }
    return { durable: Promise.all(writes).then((kept) => kept.every(Boolean)) };
  }

  /** Records that will not be durable: logged and counted (RELP: not acknowledged, so not lost). Returns false. */
  #notKept(listener: string, route: string, records: number, err: unknown, senderResends: boolean): false {
    const full = err === null;
    if (senderResends) {
      // The session closes unacknowledged (event 714); a connection already gone while the spool was full is no error.
      if (!full)
        this.deps.logger.error(
          { event: Events.SYSLOG_SPOOL_ERROR, code: 'PCL_ERR_SYSLOG_SPOOL', listener, route, records, err },
          'syslog records could not be spooled: not acknowledged, the sender sends them again',
        );
      return false;
    }
    this.deps.metrics?.dropped.inc({ listener, reason: 'spool_error' }, records);
    this.deps.logger.error(
      { event: Events.SYSLOG_SPOOL_ERROR, code: 'PCL_ERR_SYSLOG_SPOOL', listener, route, records, err: full ? ForwarderErrors.SPOOL_FULL.message : err },
      'syslog records could not be spooled: lost',
    );
    return false;
  }

  /**
   * Resolves at the next check (every ROOM_POLL_MS while anyone waits) that finds the spool below
   * its limit; never at once: the spool refused an entry that did not fit, though below the limit.
   */
  waitForRoom(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#roomTimer ??= setInterval(() => {
        if (!this.deps.intake.hasRoom()) return;
        const w = this.#waiters.splice(0);
        if (this.#roomTimer) clearInterval(this.#roomTimer);
        this.#roomTimer = null;
        for (const r of w) r();
      }, ROOM_POLL_MS);
    });
  }

  /** Wakes every waiter (stopping: the sources end). */
  close(): void {
    if (this.#roomTimer) clearInterval(this.#roomTimer);
    this.#roomTimer = null;
    for (const r of this.#waiters.splice(0)) r();
  }

  reportPoolError(listener: string, records: string, err: unknown, senderResends = false): void {
    if (!senderResends) this.deps.metrics?.dropped.inc({ listener, reason: 'spool_error' });
    this.deps.logger.error(
      { event: Events.SYSLOG_SPOOL_ERROR, code: 'PCL_ERR_SYSLOG_SPOOL', listener, what: records, err },
      senderResends ? 'syslog block could not be parsed: not acknowledged, the sender sends it again' : 'syslog block could not be parsed: lost',
    );
  }
}

/**
 * One source's ordered lane: parse() starts at once (blocks parse in parallel), spool() runs in
 * read order. pause/resume are the source's flow control.
 */
export class SourceLane {
  /** Settles when every block pushed so far is durable (or given up), in push order. */
  #tail: Promise<void> = Promise.resolve();
  /** Settles when every block pushed so far is queued for the spool, in push order. */
  #queueTail: Promise<void> = Promise.resolve();
  #inflight = 0;
  #heldByRoom = false;
  /**
   * The gateway is stopping and its drain deadline passed: blocks still waiting for the spool are
   * given up (counted, logged). Not set when the sender closes: what it sent is still spooled.
   */
  stopping = false;

  constructor(
    private readonly pipeline: Pipeline,
    private readonly listener: string,
    private readonly flow: { pause(): void; resume(): void },
    /** RELP: a block not kept is not acknowledged, and the sender sends it again (not counted as dropped). */
    private readonly senderResends = false,
  ) {}

  get inflight(): number {
    return this.#inflight;
  }

  get paused(): boolean {
    return this.#heldByRoom || this.#inflight >= MAX_INFLIGHT;
  }

  /**
   * `onSpooled` runs in push order, with whether every record of `blocks` meant to be kept is
   * durable. A block's entries are queued for the spool as soon as it is parsed and the block
   * before it is queued, not once that one is durable: the spool writes them in that order, and one
   * group commit (one fdatasync) carries the blocks of every source (waiting for each block's
   * fdatasync before queueing the next held a connection to one block per fdatasync).
   */
  push(blocks: ParseBlock[], onSpooled?: (kept: boolean) => void): void {
    this.#inflight++;
    if (this.#inflight >= MAX_INFLIGHT) this.flow.pause();
    const parsed = this.pipeline.parse(this.listener, blocks);
    // A rejected parse is handled in the chain; this only keeps it from being "unhandled" meanwhile.
    parsed.catch(() => undefined);
    const queued = this.#queueTail.then(async (): Promise<{ durable: Promise<boolean> }> => {
      try {
        const result = await parsed;
        return await this.pipeline.enqueue(
          this.listener,
          result,
          () => {
            this.#heldByRoom = true;
            this.flow.pause();
          },
          () => this.stopping,
          this.senderResends,
        );
      } catch (err) {
        this.pipeline.reportPoolError(this.listener, `${blocks.length} block(s)`, err, this.senderResends);
        return { durable: Promise.resolve(false) };
      } finally {
        this.#heldByRoom = false;
      }
    });
    this.#queueTail = queued.then(() => undefined);
    this.#tail = this.#tail.then(async () => {
      let kept = false;
      try {
        kept = await (await queued).durable;
      } finally {
        this.#inflight--;
        onSpooled?.(kept);
        if (!this.stopping && !this.#heldByRoom && this.#inflight < MAX_INFLIGHT) this.flow.resume();
      }
    });
  }

  /** Blocks read and not yet spooled (parsing, or waiting for room). */
  get busy(): boolean {
    return this.#inflight > 0;
  }

  /** Settles when everything pushed so far is spooled (or given up). */
  idle(): Promise<void> {
    return this.#tail;
  }
}

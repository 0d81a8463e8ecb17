/**
 * Per spool stream (destination + upstream stream): closes a batch when the untaken entries make a
 * full batch (batch.maxBytes of JSON) or when the oldest has waited batch.maxAgeMs, builds it in the
 * pool, hands it to the sender, and acks the entries once delivered (or dead-lettered). Woken by
 * spool.onAppend; never polls.
 *
 * batch.ordered (default; a destination's `ordered` overrides it for its streams): one batch of a
 * stream is sent at a time, so records keep their order per sender and destination; the next full
 * batch is taken and compressed meanwhile, and waits for its turn (the send chain). If a batch
 * goes back to the spool unsent (compression failed, or the gateway stops), the one waiting behind
 * it goes back too, so neither overtakes the other.
 * Otherwise, while a batch of a stream is in flight, only full batches are started for that
 * stream: during an outage or a retry, new records gather into full batches instead of a stream of
 * tiny ones.
 */
import type { ForwarderConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import type { ForwarderMetrics } from './metrics.js';
import { groupEntries, inflateRun, joinPayloads, gzipTrailerLength, type ForwarderPool } from './pool/index.js';
import { LOGS_INGESTION_MAX_BYTES, parseStreamKey, type CompiledForwarder, type Destination } from './routes.js';
import type { SpoolEntryRef, SpoolPort } from './spool-port.js';
import type { Batch, Sender } from './upstream/sender.js';

export interface BatcherOptions {
  spool: SpoolPort;
  pool: ForwarderPool;
  sender: Sender;
  config: () => ForwarderConfig;
  routes: () => CompiledForwarder;
  metrics: ForwarderMetrics | null;
  logger: Logger;
}

interface Picked {
  key: ReturnType<typeof parseStreamKey>;
  destination: Destination;
  entries: SpoolEntryRef[];
}

interface StreamState {
  inFlight: number;
  takenEntries: number;
  takenBytes: number;
  /** Sealed entries among the taken ones. */
  takenSealed: number;
  timer: NodeJS.Timeout | null;
  /** A spool.take of this stream is under way. */
  taking: boolean;
  /** Not before this time (after a pool or spool read failure). */
  pausedUntil: number;
  /** A held entry (still being checked) is next: wait for the spool's next word on this stream. */
  blocked: boolean;
  /**
   * Ordered streams: settles when the batch taken last has been sent (true) or went back to the
   * spool unsent (false); the next batch sends only after it, and only if it was sent.
   */
  sendChain: Promise<boolean>;
}

/** A destination's own `ordered`, or batch.ordered. */
function isOrdered(destination: Destination | undefined, cfg: ForwarderConfig): boolean {
  return destination?.ordered ?? cfg.batch.ordered;
}

/** Batches of an ordered stream at once: one being sent, one taken and compressed behind it. */
const ORDERED_WINDOW = 2;

export class Batcher {
  readonly #streams = new Map<string, StreamState>();
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;
  readonly #warnedUnknown = new Set<string>();

  constructor(private readonly opts: BatcherOptions) {}

  start(): void {
    this.opts.spool.onAppend((stream) => {
      const s = this.#streams.get(stream);
      if (s) s.blocked = false;
      this.#schedule(stream);
    });
    for (const stream of this.opts.spool.streams()) this.#schedule(stream);
  }

  /** After a reload: destinations may have come back. */
  rescan(): void {
    this.#warnedUnknown.clear();
    for (const stream of this.opts.spool.streams()) this.#schedule(stream);
  }

  get inFlight(): number {
    return this.#running.size;
  }

  /**
   * No new batches; in-flight ones may finish until the deadline, then they are aborted (their
   * entries stay in the spool and are sent again on the next start: at-least-once).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.#stopped = true;
    for (const s of this.#streams.values()) if (s.timer) clearTimeout(s.timer);
    const all = Promise.allSettled([...this.#running]);
    const timer = setTimeout(() => this.#abort.abort(), Math.max(0, deadlineMs));
    await all;
    clearTimeout(timer);
    this.#abort.abort();
  }

  #state(stream: string): StreamState {
    let s = this.#streams.get(stream);
    if (!s) {
      s = {
        inFlight: 0,
        takenEntries: 0,
        takenBytes: 0,
        takenSealed: 0,
        timer: null,
        taking: false,
        pausedUntil: 0,
        blocked: false,
        sendChain: Promise.resolve(true),
      };
      this.#streams.set(stream, s);
    }
    return s;
  }

  #schedule(stream: string): void {
    if (this.#stopped) return;
    const s = this.#state(stream);
    const cfg = this.opts.config();
    // One take at a time per stream: the counts below are only right once it has returned. In
    // order (the default), one batch is sent at a time per stream and one more may be prepared
    // behind it; it is sent once the first is delivered (its retries included) or dead-lettered.
    if (s.blocked || s.taking || s.inFlight >= (isOrdered(this.#destination(stream), cfg) ? ORDERED_WINDOW : cfg.upstream.maxConcurrency)) return;
    const pending = this.opts.spool.pending(stream);
    const entries = pending.entries - s.takenEntries;
    const bytes = pending.bytes - s.takenBytes;
    if (entries <= 0) return;
    const now = Date.now();
    if (s.pausedUntil > now) return this.#arm(stream, s, s.pausedUntil - now);
    // "[" + payloads joined by "," + "]"; a sealed entry is a full batch by itself, and ends the
    // batch before it.
    const full = bytes + entries + 1 >= this.#maxBody(stream, cfg) || pending.sealed - s.takenSealed > 0;
    if (!full) {
      if (s.inFlight > 0) return; // its completion schedules again
      const age = pending.oldestAppendedAt === null ? 0 : now - pending.oldestAppendedAt;
      if (age < cfg.batch.maxAgeMs) return this.#arm(stream, s, cfg.batch.maxAgeMs - age);
    }
    if (s.timer) {
      clearTimeout(s.timer);
      s.timer = null;
    }
    s.inFlight++;
    s.taking = true;
    const p = this.#runBatch(stream, s).finally(() => {
      s.inFlight--;
      this.#running.delete(p);
      this.#schedule(stream);
    });
    this.#running.add(p);
  }

  #arm(stream: string, s: StreamState, ms: number): void {
    if (s.timer) return;
    s.timer = setTimeout(
      () => {
        s.timer = null;
        this.#schedule(stream);
      },
      Math.max(1, ms),
    );
  }

  /** The destination a spool stream goes to (undefined once a reload removed it). */
  #destination(stream: string): Destination | undefined {
    return this.opts.routes().destinations.get(parseStreamKey(stream).destination);
  }

  #maxBody(stream: string, cfg: ForwarderConfig): number {
    const dest = this.#destination(stream);
    return dest?.type === 'logsIngestion' ? Math.min(cfg.batch.maxBytes, LOGS_INGESTION_MAX_BYTES) : cfg.batch.maxBytes;
  }

  async #runBatch(stream: string, s: StreamState): Promise<void> {
    const cfg = this.opts.config();
    let picked: Picked | null;
    try {
      picked = await this.#pick(stream, s, cfg);
    } finally {
      // Cleared by the batch that set it, on every path: a later batch's take is never marked done early.
      s.taking = false;
    }
    if (picked === null) return;
    // Its place in the stream's send chain, taken before the next batch can be picked.
    const before = s.sendChain;
    let settle: (sent: boolean) => void = () => undefined;
    s.sendChain = new Promise<boolean>((resolve) => (settle = resolve));
    let sent = false;
    try {
      await this.#prepareAndSend(stream, s, picked, cfg, before, () => (sent = true));
    } finally {
      settle(sent);
    }
  }

  /** Builds the batch, waits for its turn (ordered streams), sends it and acks its entries. */
  async #prepareAndSend(stream: string, s: StreamState, picked: Picked, cfg: ForwarderConfig, before: Promise<boolean>, onSent: () => void): Promise<void> {
    const { spool, pool, sender, logger, metrics } = this.opts;
    const { key, destination, entries } = picked;
    const ids = entries.map((e) => e.id);
    const bytes = entries.reduce((n, e) => n + e.length, 0);
    const sealedCount = entries.reduce((n, e) => n + (e.sealed === true ? 1 : 0), 0);
    s.takenEntries += entries.length;
    s.takenBytes += bytes;
    s.takenSealed += sealedCount;
    // Counts are right again: another full batch may start while this one is built and sent.
    this.#schedule(stream);
    const untake = (): void => {
      s.takenEntries -= entries.length;
      s.takenBytes -= bytes;
      s.takenSealed -= sealedCount;
    };
    /** The entries go back to the spool; the stream tries again in 1 s. */
    const backOff = (): void => {
      spool.release(ids);
      untake();
      s.pausedUntil = Date.now() + 1_000;
    };

    const oldest = entries.reduce((m, e) => Math.min(m, e.appendedAt), Number.POSITIVE_INFINITY);
    const records = entries.reduce((n, e) => n + e.records, 0);
    const isSealed = entries.length === 1 && entries[0]?.sealed === true;
    let raw: Uint8Array | null = null;
    let gz: Uint8Array | null = null;
    let rawBytes: number;
    if (!isSealed && destination.type === 'logsIngestion') {
      // The usual batch: a pool thread reads the payloads from the spool's files, joins and
      // gzips them; only the gzip comes back (the JSON too if it did not compress within 1 MiB).
      try {
        const built = await pool.buildFromSpool({
          kind: 'build-spool',
          parts: entries.map((e) => ({ path: e.path, offset: e.offset, length: e.length, ...(e.deflated === true ? { deflated: true } : {}) })),
          level: cfg.batch.gzipLevel,
          maxGzipBytes: LOGS_INGESTION_MAX_BYTES,
        });
        // Both the compressed and the uncompressed body must be within 1 MiB; the JSON already
        // is, so an incompressible batch whose gzip grew past the limit goes uncompressed.
        raw = built.raw;
        gz = built.gz;
        rawBytes = built.rawBytes;
      } catch (err) {
        logger.error({ event: Events.FWD_POOL_ERROR, err, destination: destination.name }, 'building a batch failed: retrying in 1 s');
        return backOff();
      }
    } else {
      // A sealed entry (a client's gzip body, sent as it came) or a Data Collector batch (sent
      // as JSON): the payloads are read here.
      let read: Awaited<ReturnType<SpoolPort['read']>>;
      try {
        read = await spool.read(entries);
      } catch {
        return backOff(); // the spool logged it
      }
      let payloads: Uint8Array[];
      try {
        // A deflate run (a syslog entry) in a batch that goes as JSON: a Data Collector
        // destination now holds this stream (a reload changed its type).
        payloads = read.map((e) => (e.deflated === true ? inflateRun(e.payload) : e.payload));
      } catch (err) {
        logger.error({ event: Events.FWD_POOL_ERROR, err, destination: destination.name }, 'building a batch failed: retrying in 1 s');
        return backOff();
      }
      const sealed = isSealed ? (payloads[0] ?? null) : null;
      raw = sealed === null ? joinPayloads(payloads) : null;
      gz = sealed;
      rawBytes = sealed === null ? (raw?.byteLength ?? 0) : gzipTrailerLength(sealed);
    }
    metrics?.batchBytes.observe({ destination: destination.name }, rawBytes);
    metrics?.batchAge.observe({ destination: destination.name }, Math.max(0, Date.now() - oldest) / 1000);
    const batch: Batch = {
      destination,
      upstream: key.upstream,
      timeGeneratedField: key.timeGeneratedField,
      raw,
      gz,
      rawBytes,
      sealed: isSealed,
      records,
      entryIds: ids,
      oldestAppendedAt: oldest,
    };
    // The batch ahead of this one went back to the spool unsent: this one goes back too, or it
    // would overtake it.
    if (isOrdered(destination, cfg) && !(await before)) {
      spool.release(ids);
      untake();
      return;
    }
    let outcome;
    try {
      outcome = await sender.send(batch, this.#abort.signal);
    } catch (err) {
      logger.error({ event: Events.INTERNAL_ERROR, err, destination: destination.name }, 'sending a batch failed unexpectedly: it stays in the spool');
      outcome = 'aborted' as const;
    }
    if (outcome === 'aborted') {
      spool.release(ids);
      untake();
      if (!this.#stopped) s.pausedUntil = Date.now() + 1_000;
      return;
    }
    // Delivered or dead-lettered: the next batch of the stream may go.
    onSent();
    try {
      await spool.ack(ids);
    } catch (err) {
      // Delivered but the ack record is not durable yet: the spool has forgotten the entries and
      // writes their ids with the segment's next ack record; a crash before that replays them
      // (duplicates upstream, never a loss).
      logger.error(
        { event: Events.FWD_SPOOL_ERROR, err, destination: destination.name },
        'spool ack failed: a restart before it is written sends these records again',
      );
      s.pausedUntil = Date.now() + 1_000;
    }
    untake();
  }

  /** Takes the next batch's entries from the spool (the stream's `taking` is set meanwhile), or null. */
  async #pick(stream: string, s: StreamState, cfg: ForwarderConfig): Promise<Picked | null> {
    const { spool, logger } = this.opts;
    const key = parseStreamKey(stream);
    const destination = this.opts.routes().destinations.get(key.destination);
    if (!destination) {
      if (!this.#warnedUnknown.has(stream)) {
        this.#warnedUnknown.add(stream);
        logger.warn(
          { event: Events.FWD_LIFECYCLE, destination: key.destination },
          'spooled records for a destination no longer configured: kept in the spool until it comes back',
        );
      }
      s.pausedUntil = Number.POSITIVE_INFINITY;
      return null;
    }
    const maxBody = this.#maxBody(stream, cfg);
    // Leave room for the separators so the batch taken is the batch sent (no tiny remainder).
    const pending = spool.pending(stream);
    const avg = pending.entries > 0 ? pending.bytes / pending.entries : 1;
    const budget = Math.max(1, Math.floor((maxBody - 2) * (avg / (avg + 1))));
    const taken = spool.takeRefs(stream, budget);
    if (taken.length === 0) {
      // A held entry is next (its upload is still being checked): the spool says when it is
      // settled (onAppend). Otherwise the counts were off: do not spin, look again shortly.
      if (spool.pending(stream).held > 0) s.blocked = true;
      else s.pausedUntil = Date.now() + 100;
      return null;
    }
    const groups = groupEntries(
      taken.map((e) => e.rawLength),
      maxBody,
    );
    const end = groups[0]?.[1] ?? taken.length;
    const entries = taken.slice(0, end);
    if (end < taken.length) spool.release(taken.slice(end).map((e) => e.id));
    return { key, destination, entries };
  }
}

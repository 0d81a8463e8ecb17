/**
 * Delivers one built batch to its destination: an undici Agent per upstream origin (keep-alive,
 * connecting only through the policy-vetted connector), adaptive concurrency and a request-rate
 * budget per destination, retries with backoff / Retry-After, a forced token refresh on 401/403,
 * and the dead-letter folder for what the upstream refuses for good. The caller acks the spool
 * entries only on 'delivered' or 'dead-lettered'.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { Agent } from 'undici';
import type { ForwarderConfig } from '../../config/types.js';
import { ForwarderErrors } from '../../errors/catalogue.js';
import type { Logger } from '../../log/logger.js';
import { Events } from '../../log/events.js';
import { isPortcullisError } from '../../util/errors.js';
import type { ForwarderMetrics } from '../metrics.js';
import { LOGS_INGESTION_MAX_BYTES, type Destination } from '../routes.js';
import { AdaptiveLimit } from './concurrency.js';
import { writeDeadLetter } from './dead-letter.js';
import { RETRYABLE_STATUS, backoffMs, retryAfterMs } from './retry.js';

/** An Entra access token for https://monitor.azure.com (cached by the provider). */
export interface TokenSource {
  getToken(forceRefresh: boolean): Promise<string>;
}

/** Headers for one signed Data Collector post (upstream/shared-key.ts signDataCollectorRequest). */
export type DataCollectorSigner = (opts: {
  workspaceId: string;
  sharedKey: Buffer;
  body: Uint8Array;
  logType: string;
  timeGeneratedField?: string;
}) => Record<string, string>;

export interface Batch {
  readonly destination: Destination;
  /** Upstream stream (Logs Ingestion) or Log-Type (Data Collector). */
  readonly upstream: string;
  readonly timeGeneratedField: string;
  /**
   * "[...]" JSON, or null when only gz is at hand: a sealed batch (a client's gzip body, sent as
   * it came), or one compressed in a pool thread from the spool's files. Inflated from gz if needed.
   */
  readonly raw: Uint8Array | null;
  /** gzip of raw, or null to send raw (Data Collector, or gzip did not fit the 1 MiB limit). */
  readonly gz: Uint8Array | null;
  /** Bytes of the uncompressed JSON. */
  readonly rawBytes: number;
  /** A client's gzip body sent as it came (for the log). */
  readonly sealed?: boolean;
  readonly records: number;
  readonly entryIds: number[];
  readonly oldestAppendedAt: number;
}

export type SendOutcome = 'delivered' | 'dead-lettered' | 'aborted';

export interface SenderOptions {
  config: () => ForwarderConfig;
  connect: NonNullable<Agent.Options['connect']>;
  tokens: (destination: string) => TokenSource | undefined;
  sign: DataCollectorSigner;
  deadLetterDir: string;
  metrics: ForwarderMetrics | null;
  logger: Logger;
}

const MAX_ANSWER_BYTES = 16 * 1024;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class Sender {
  readonly #agents = new Map<string, Agent>();
  readonly #limits = new Map<string, AdaptiveLimit>();
  /**
   * Per destination: no request before this time (epoch ms). A Retry-After is the upstream's word
   * about the destination, not about one batch: every batch waits it out, not only the refused one.
   */
  readonly #notBefore = new Map<string, number>();

  constructor(private readonly opts: SenderOptions) {}

  /** For metrics: concurrency limit and requests in flight per destination. */
  concurrency(): Array<{ destination: string; limit: number; inFlight: number }> {
    return [...this.#limits].map(([destination, l]) => ({ destination, limit: l.limit, inFlight: l.inFlight }));
  }

  async send(batch: Batch, signal: AbortSignal): Promise<SendOutcome> {
    const { metrics, logger } = this.opts;
    const dest = batch.destination;
    const limit = this.#limit(dest.name);
    let attempt = 0;
    let refreshed = false;
    let forceRefresh = false;
    for (;;) {
      if (signal.aborted) return 'aborted';
      if (!(await this.#holdOff(dest.name, signal))) return 'aborted';
      await limit.acquire();
      if (signal.aborted) {
        limit.release('unused');
        return 'aborted';
      }
      // Another batch may have been told to wait while this one queued for a slot.
      if (this.#heldOff(dest.name)) {
        limit.release('unused');
        continue;
      }
      const t0 = performance.now();
      let answer: Answer | null = null;
      let failure: unknown = null;
      try {
        answer = await this.#request(batch, forceRefresh, signal);
        forceRefresh = false;
      } catch (err) {
        failure = err;
      }
      const seconds = (performance.now() - t0) / 1000;
      if (answer === null) {
        limit.release('error');
        if (signal.aborted) return 'aborted';
        metrics?.upstreamResponses.inc({ destination: dest.name, status: 'network' });
        metrics?.retries.inc({ destination: dest.name, reason: 'network' });
        const delay = backoffMs(attempt++, this.#cfg().retry.baseMs, this.#cfg().retry.maxMs);
        if (isPortcullisError(failure) && failure.code === ForwarderErrors.FWD_UPSTREAM_FORBIDDEN.code) {
          // A config problem, not a network one: said loudly, and retried so a reload that allows it takes effect.
          logger.error(
            { event: Events.FWD_UPSTREAM_FORBIDDEN, destination: dest.name, err: failure, attempt, delayMs: delay },
            'the gateway policy refuses this upstream: records wait in the spool',
          );
        } else {
          logger.warn({ event: Events.FWD_UPSTREAM_RETRY, destination: dest.name, err: failure, attempt, delayMs: delay }, 'upstream request failed: retrying');
        }
        if (!(await this.#wait(delay, signal))) return 'aborted';
        continue;
      }
      metrics?.upstreamLatency.observe({ destination: dest.name }, seconds);
      metrics?.upstreamResponses.inc({ destination: dest.name, status: String(answer.status) });
      if (answer.status >= 200 && answer.status < 300) {
        limit.release('success');
        this.#delivered(batch);
        return 'delivered';
      }
      if (RETRYABLE_STATUS.has(answer.status)) {
        limit.release(answer.status === 429 || answer.status === 503 ? 'throttled' : 'error');
        const asked = retryAfterMs(answer.headers);
        // The server's word is honoured exactly, for the whole destination; our own backoff only when it gave none.
        if (asked !== null) this.#notBefore.set(dest.name, Math.max(this.#notBefore.get(dest.name) ?? 0, Date.now() + asked));
        const delay = asked ?? backoffMs(attempt, this.#cfg().retry.baseMs, this.#cfg().retry.maxMs);
        attempt++;
        metrics?.retries.inc({ destination: dest.name, reason: String(answer.status) });
        logger.warn(
          {
            event: Events.FWD_UPSTREAM_RETRY,
            destination: dest.name,
            status: answer.status,
            attempt,
            delayMs: delay,
            retryAfter: asked !== null,
            answer: answer.body.slice(0, 300),
          },
          `upstream answered ${answer.status}: retrying`,
        );
        if (!(await this.#wait(delay, signal))) return 'aborted';
        continue;
      }
      limit.release('success');
      if ((answer.status === 401 || answer.status === 403) && dest.type === 'logsIngestion' && !refreshed) {
        refreshed = true;
        forceRefresh = true;
        metrics?.tokenRefreshes.inc({ destination: dest.name });
        logger.warn(
          { event: Events.FWD_TOKEN_REFRESH, destination: dest.name, status: answer.status },
          'upstream refused the token: refreshing it and retrying once',
        );
        continue;
      }
      await this.#deadLetter(batch, answer);
      return 'dead-lettered';
    }
  }

  async close(): Promise<void> {
    for (const l of this.#limits.values()) l.close();
    await Promise.allSettled([...this.#agents.values()].map((a) => a.close()));
    this.#agents.clear();
  }

  #heldOff(destination: string): boolean {
    return (this.#notBefore.get(destination) ?? 0) > Date.now();
  }

  /** Waits out the destination's Retry-After, if one is running; false when aborted. */
  async #holdOff(destination: string, signal: AbortSignal): Promise<boolean> {
    for (;;) {
      const ms = (this.#notBefore.get(destination) ?? 0) - Date.now();
      if (ms <= 0) return true;
      if (!(await this.#wait(ms, signal))) return false;
    }
  }

  /** false when aborted while waiting. */
  async #wait(ms: number, signal: AbortSignal): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal });
      return true;
    } catch {
      return false;
    }
  }

  #cfg(): ForwarderConfig['upstream'] {
    return this.opts.config().upstream;
  }

  #limit(destination: string): AdaptiveLimit {
    let l = this.#limits.get(destination);
    if (!l) {
      l = new AdaptiveLimit(this.#cfg().maxConcurrency, this.#cfg().maxRequestsPerMinute);
      this.#limits.set(destination, l);
    }
    return l;
  }

  #agent(origin: string): Agent {
    let a = this.#agents.get(origin);
    if (!a) {
      a = new Agent({
        connect: this.opts.connect,
        keepAliveTimeout: 30_000,
        connections: this.#cfg().maxConcurrency,
        // Bodies are whole buffers: no need for pipelining.
        pipelining: 1,
      });
      this.#agents.set(origin, a);
    }
    return a;
  }

  async #request(batch: Batch, forceRefresh: boolean, signal: AbortSignal): Promise<Answer> {
    const dest = batch.destination;
    const timeoutMs = this.#cfg().timeoutMs;
    const requestId = randomUUID();
    let path: string;
    let headers: Record<string, string>;
    let body: Uint8Array;
    if (dest.type === 'logsIngestion') {
      const tokens = this.opts.tokens(dest.name);
      if (!tokens) throw new Error(`no token source for destination ${dest.name}`);
      const token = await tokens.getToken(forceRefresh);
      body = batch.gz ?? rawOf(batch);
      path = `/dataCollectionRules/${encodeURIComponent(dest.dcrId)}/streams/${encodeURIComponent(batch.upstream)}?api-version=2023-01-01`;
      headers = {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'x-ms-client-request-id': requestId,
        ...(batch.gz ? { 'content-encoding': 'gzip' } : {}),
      };
    } else {
      body = rawOf(batch);
      path = '/api/logs?api-version=2016-04-01';
      // Signed per attempt: x-ms-date must be fresh even after a long outage.
      headers = {
        ...this.opts.sign({
          workspaceId: dest.workspaceId,
          sharedKey: dest.key,
          body,
          logType: batch.upstream,
          ...(batch.timeGeneratedField ? { timeGeneratedField: batch.timeGeneratedField } : {}),
        }),
        'x-ms-client-request-id': requestId,
      };
    }
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await this.#agent(dest.endpoint.origin).request({
      origin: dest.endpoint.origin,
      path,
      method: 'POST',
      headers,
      body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.any([signal, timeout]),
    });
    return { status: res.statusCode, headers: res.headers, body: await readCapped(res.body) };
  }

  #delivered(batch: Batch): void {
    const { metrics, logger } = this.opts;
    const name = batch.destination.name;
    const sentBytes = batch.gz?.byteLength ?? batch.rawBytes;
    metrics?.batchesSent.inc({ destination: name });
    metrics?.recordsSent.inc({ destination: name }, batch.records);
    metrics?.bytesSent.inc({ destination: name, encoding: batch.gz ? 'gzip' : 'identity' }, sentBytes);
    metrics?.bytesUncompressed.inc({ destination: name }, batch.rawBytes);
    if (batch.gz) metrics?.compressionRatio.observe({ destination: name }, batch.rawBytes / Math.max(1, batch.gz.byteLength));
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        { event: Events.FWD_BATCH_SENT, destination: name, records: batch.records, bytes: sentBytes, raw: batch.rawBytes, sealed: batch.sealed === true },
        'batch delivered',
      );
    }
  }

  async #deadLetter(batch: Batch, answer: Answer): Promise<void> {
    const { metrics, logger } = this.opts;
    const name = batch.destination.name;
    const requestId = answer.headers['x-ms-request-id'];
    let file: string | null = null;
    try {
      file = await writeDeadLetter(
        this.opts.deadLetterDir,
        {
          destination: name,
          stream: batch.upstream,
          status: answer.status,
          answer: answer.body,
          requestId: typeof requestId === 'string' ? requestId : null,
          records: batch.records,
          entryIds: batch.entryIds,
          reason: `upstream answered ${answer.status}, which is not retried`,
        },
        rawOf(batch),
      );
    } catch (err) {
      logger.error({ event: Events.FWD_DEAD_LETTER, destination: name, err }, 'cannot write the dead-letter file: the records are dropped');
    }
    metrics?.deadLettered.inc({ destination: name, status: String(answer.status) });
    metrics?.deadLetteredRecords.inc({ destination: name }, batch.records);
    logger.error(
      {
        event: Events.FWD_DEAD_LETTER,
        destination: name,
        stream: batch.upstream,
        status: answer.status,
        records: batch.records,
        file,
        answer: answer.body.slice(0, 500),
      },
      `upstream refused a batch for good (${answer.status}): written to the dead-letter folder`,
    );
  }
}

/** The batch's JSON; inflated when only the gzip is at hand (dead letters, a Data Collector upstream, a sealed batch). */
function rawOf(batch: Batch): Uint8Array {
  if (batch.raw !== null) return batch.raw;
  if (batch.gz === null) throw new Error('a batch with neither raw nor gzip body');
  return gunzipSync(batch.gz);
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy?: () => void }): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    if (n < MAX_ANSWER_BYTES) chunks.push(chunk);
    n += chunk.byteLength;
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, MAX_ANSWER_BYTES);
}

export { LOGS_INGESTION_MAX_BYTES };

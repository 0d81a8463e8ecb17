/**
 * The forwarder's Prometheus metrics (portcullis_forwarder_*). Labels are bounded: api (2 values),
 * route and destination names from the config, reasons and status classes from closed sets.
 */
import client, { type Registry } from 'prom-client';
import { seriesOn } from '../util/prom.js';

const SIZE_BUCKETS = [1_024, 8_192, 32_768, 131_072, 262_144, 524_288, 786_432, 1_048_576];
const AGE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const RATIO_BUCKETS = [1, 2, 3, 5, 8, 12, 20, 50];

/** What the metrics read at scrape time. */
export interface ForwarderState {
  spool(): {
    bytes: number;
    maxBytes: number;
    segments: number;
    pendingEntries: number;
    pendingBytes: number;
    oldestAppendedAt: number | null;
    healthy: boolean;
  } | null;
  poolUtilization(): number;
  poolQueued(): number;
  concurrency(): Array<{ destination: string; limit: number; inFlight: number }>;
}

export class ForwarderMetrics {
  readonly recordsReceived: client.Counter<'api'>;
  readonly bytesReceived: client.Counter<'api'>;
  readonly recordsAccepted: client.Counter<'api' | 'route'>;
  readonly uploadsRefused: client.Counter<'api' | 'reason'>;
  readonly batchesSent: client.Counter<'destination'>;
  readonly recordsSent: client.Counter<'destination'>;
  readonly bytesSent: client.Counter<'destination' | 'encoding'>;
  readonly bytesUncompressed: client.Counter<'destination'>;
  readonly compressionRatio: client.Histogram<'destination'>;
  readonly batchBytes: client.Histogram<'destination'>;
  readonly batchAge: client.Histogram<'destination'>;
  readonly retries: client.Counter<'destination' | 'reason'>;
  readonly deadLettered: client.Counter<'destination' | 'status'>;
  readonly deadLetteredRecords: client.Counter<'destination'>;
  readonly upstreamLatency: client.Histogram<'destination'>;
  readonly upstreamResponses: client.Counter<'destination' | 'status'>;
  readonly tokenRefreshes: client.Counter<'destination'>;
  readonly tokenFailures: client.Counter<'destination'>;
  readonly ackLatency: client.Histogram<'api'>;

  constructor(registry: Registry, state: ForwarderState) {
    const registers = [registry];
    const { counter, histogram } = seriesOn(registry);
    this.recordsReceived = counter('portcullis_forwarder_records_received_total', 'Records in uploads that reached decoding.', ['api']);
    this.bytesReceived = counter('portcullis_forwarder_bytes_received_total', 'Upload body bytes received (as sent, possibly gzip).', ['api']);
    this.recordsAccepted = counter('portcullis_forwarder_records_accepted_total', 'Records spooled and acknowledged to the client.', ['api', 'route']);
    this.uploadsRefused = counter('portcullis_forwarder_uploads_refused_total', 'Uploads refused, by reason.', ['api', 'reason']);
    this.batchesSent = counter('portcullis_forwarder_batches_sent_total', 'Batches delivered upstream (2xx).', ['destination']);
    this.recordsSent = counter('portcullis_forwarder_records_sent_total', 'Records delivered upstream.', ['destination']);
    this.bytesSent = counter('portcullis_forwarder_bytes_sent_total', 'Request body bytes delivered upstream, as sent.', ['destination', 'encoding']);
    this.bytesUncompressed = counter('portcullis_forwarder_bytes_uncompressed_total', 'JSON bytes of the batches delivered upstream, before compression.', [
      'destination',
    ]);
    this.compressionRatio = histogram('portcullis_forwarder_compression_ratio', 'Uncompressed / compressed size per batch.', ['destination'], RATIO_BUCKETS);
    this.batchBytes = histogram('portcullis_forwarder_batch_bytes', 'JSON bytes per upstream batch.', ['destination'], SIZE_BUCKETS);
    this.batchAge = histogram('portcullis_forwarder_batch_age_seconds', 'Age of the oldest entry of a batch when it is sent.', ['destination'], AGE_BUCKETS);
    this.retries = counter('portcullis_forwarder_retries_total', 'Upstream requests retried, by reason.', ['destination', 'reason']);
    this.deadLettered = counter('portcullis_forwarder_dead_lettered_batches_total', 'Batches written to the dead-letter folder.', ['destination', 'status']);
    this.deadLetteredRecords = counter('portcullis_forwarder_dead_lettered_records_total', 'Records written to the dead-letter folder.', ['destination']);
    this.upstreamLatency = histogram(
      'portcullis_forwarder_upstream_latency_seconds',
      'Upstream request time (send to answer).',
      ['destination'],
      LATENCY_BUCKETS,
    );
    this.upstreamResponses = counter('portcullis_forwarder_upstream_responses_total', 'Upstream answers by status (or "network").', ['destination', 'status']);
    this.tokenRefreshes = counter('portcullis_forwarder_token_refreshes_total', 'Forced Entra token refreshes after a 401/403.', ['destination']);
    // Without it a credential that stopped working only shows as a growing spool (PortcullisForwarderTokenFailures).
    this.tokenFailures = counter('portcullis_forwarder_token_failures_total', 'Entra token requests that failed (no token to send with).', ['destination']);
    this.ackLatency = histogram(
      'portcullis_forwarder_ack_seconds',
      'Upload received to success status sent (includes the spool fsync).',
      ['api'],
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    );

    const spoolGauge = (name: string, help: string, pick: (s: NonNullable<ReturnType<ForwarderState['spool']>>) => number): void => {
      new client.Gauge({
        name,
        help,
        registers,
        collect() {
          const s = state.spool();
          this.set(s ? pick(s) : 0);
        },
      });
    };
    spoolGauge('portcullis_forwarder_spool_bytes', 'Bytes of spool segment files on disk.', (s) => s.bytes);
    // The limit next to the usage, so "spool filling" is one ratio in PromQL (PortcullisForwarderSpoolFilling).
    spoolGauge('portcullis_forwarder_spool_max_bytes', 'Spool byte limit (forwarder.spool.maxBytes); uploads are refused past it.', (s) => s.maxBytes);
    spoolGauge('portcullis_forwarder_spool_segments', 'Spool segment files.', (s) => s.segments);
    spoolGauge('portcullis_forwarder_spool_pending_entries', 'Spool entries not yet delivered.', (s) => s.pendingEntries);
    spoolGauge('portcullis_forwarder_spool_pending_bytes', 'Payload bytes not yet delivered.', (s) => s.pendingBytes);
    spoolGauge('portcullis_forwarder_spool_healthy', '1 while the spool can write.', (s) => (s.healthy ? 1 : 0));
    spoolGauge('portcullis_forwarder_oldest_unsent_age_seconds', 'Age of the oldest record not yet delivered (0 when none).', (s) =>
      s.oldestAppendedAt === null ? 0 : Math.max(0, (Date.now() - s.oldestAppendedAt) / 1000),
    );
    new client.Gauge({
      name: 'portcullis_forwarder_pool_utilization',
      help: 'Share of the worker threads (decode lane and batch build pool) busy since start (0..1).',
      registers,
      collect() {
        this.set(state.poolUtilization());
      },
    });
    new client.Gauge({
      name: 'portcullis_forwarder_pool_queued_tasks',
      help: 'Uploads being decoded in the decode lane plus pool tasks (batch builds, syslog parse blocks) waiting for a pool thread.',
      registers,
      collect() {
        this.set(state.poolQueued());
      },
    });
    new client.Gauge({
      name: 'portcullis_forwarder_upstream_concurrency',
      help: 'Adaptive concurrency limit per destination.',
      labelNames: ['destination'],
      registers,
      collect() {
        this.reset();
        for (const c of state.concurrency()) this.set({ destination: c.destination }, c.limit);
      },
    });
    new client.Gauge({
      name: 'portcullis_forwarder_upstream_in_flight',
      help: 'Upstream requests in flight per destination.',
      labelNames: ['destination'],
      registers,
      collect() {
        this.reset();
        for (const c of state.concurrency()) this.set({ destination: c.destination }, c.inFlight);
      },
    });
  }
}

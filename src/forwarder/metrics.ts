/**
 * The forwarder's Prometheus metrics (portcullis_forwarder_*). Labels are bounded: api (2 values),
 * route and destination names from the config, reasons and status classes from closed sets.
 */
import client, { type Registry } from 'prom-client';

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
    this.recordsReceived = new client.Counter({
      name: 'portcullis_forwarder_records_received_total',
      help: 'Records in uploads that reached decoding.',
      labelNames: ['api'],
      registers,
    });
    this.bytesReceived = new client.Counter({
      name: 'portcullis_forwarder_bytes_received_total',
      help: 'Upload body bytes received (as sent, possibly gzip).',
      labelNames: ['api'],
      registers,
    });
    this.recordsAccepted = new client.Counter({
      name: 'portcullis_forwarder_records_accepted_total',
      help: 'Records spooled and acknowledged to the client.',
      labelNames: ['api', 'route'],
      registers,
    });
    this.uploadsRefused = new client.Counter({
      name: 'portcullis_forwarder_uploads_refused_total',
      help: 'Uploads refused, by reason.',
      labelNames: ['api', 'reason'],
      registers,
    });
    this.batchesSent = new client.Counter({
      name: 'portcullis_forwarder_batches_sent_total',
      help: 'Batches delivered upstream (2xx).',
      labelNames: ['destination'],
      registers,
    });
    this.recordsSent = new client.Counter({
      name: 'portcullis_forwarder_records_sent_total',
      help: 'Records delivered upstream.',
      labelNames: ['destination'],
      registers,
    });
    this.bytesSent = new client.Counter({
      name: 'portcullis_forwarder_bytes_sent_total',
      help: 'Request body bytes delivered upstream, as sent.',
      labelNames: ['destination', 'encoding'],
      registers,
    });
    this.bytesUncompressed = new client.Counter({
      name: 'portcullis_forwarder_bytes_uncompressed_total',
      help: 'JSON bytes of the batches delivered upstream, before compression.',
      labelNames: ['destination'],
      registers,
    });
    this.compressionRatio = new client.Histogram({
      name: 'portcullis_forwarder_compression_ratio',
      help: 'Uncompressed / compressed size per batch.',
      labelNames: ['destination'],
      buckets: RATIO_BUCKETS,
      registers,
    });
    this.batchBytes = new client.Histogram({
      name: 'portcullis_forwarder_batch_bytes',
      help: 'JSON bytes per upstream batch.',
      labelNames: ['destination'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.batchAge = new client.Histogram({
      name: 'portcullis_forwarder_batch_age_seconds',
      help: 'Age of the oldest entry of a batch when it is sent.',
      labelNames: ['destination'],
      buckets: AGE_BUCKETS,
      registers,
    });
    this.retries = new client.Counter({
      name: 'portcullis_forwarder_retries_total',
      help: 'Upstream requests retried, by reason.',
      labelNames: ['destination', 'reason'],
      registers,
    });
    this.deadLettered = new client.Counter({
      name: 'portcullis_forwarder_dead_lettered_batches_total',
      help: 'Batches written to the dead-letter folder.',
      labelNames: ['destination', 'status'],
      registers,
    });
    this.deadLetteredRecords = new client.Counter({
      name: 'portcullis_forwarder_dead_lettered_records_total',
      help: 'Records written to the dead-letter folder.',
      labelNames: ['destination'],
      registers,
    });
    this.upstreamLatency = new client.Histogram({
      name: 'portcullis_forwarder_upstream_latency_seconds',
      help: 'Upstream request time (send to answer).',
      labelNames: ['destination'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.upstreamResponses = new client.Counter({
      name: 'portcullis_forwarder_upstream_responses_total',
      help: 'Upstream answers by status (or "network").',
      labelNames: ['destination', 'status'],
      registers,
    });
    this.tokenRefreshes = new client.Counter({
      name: 'portcullis_forwarder_token_refreshes_total',
      help: 'Forced Entra token refreshes after a 401/403.',
      labelNames: ['destination'],
      registers,
    });
    // Without it a credential that stopped working only shows as a growing spool (PortcullisForwarderTokenFailures).
    this.tokenFailures = new client.Counter({
      name: 'portcullis_forwarder_token_failures_total',
      help: 'Entra token requests that failed (no token to send with).',
      labelNames: ['destination'],
      registers,
    });
    this.ackLatency = new client.Histogram({
      name: 'portcullis_forwarder_ack_seconds',
      help: 'Upload received to success status sent (includes the spool fsync).',
      labelNames: ['api'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });

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
      help: 'Uploads being decoded in the decode lane plus batch builds waiting for a pool thread.',
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

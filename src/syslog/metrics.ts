/**
 * The collector's Prometheus metrics (portcullis_syslog_*). Labels: listener and route names from
 * the config, format and reason from closed sets. Never the sender's address.
 */
import client, { type Registry } from 'prom-client';
import { seriesOn } from '../util/prom.js';

export interface SyslogState {
  connections(): Array<{ listener: string; open: number }>;
  /** Kernel drops of each UDP listener's socket (/proc/net/udp{,6}), null where unreadable. */
  kernelDrops(): Array<{ listener: string; drops: number }>;
  pausedConnections(): number;
}

export class SyslogMetrics {
  readonly messages: client.Counter<'listener' | 'format'>;
  readonly bytes: client.Counter<'listener'>;
  readonly parseFailures: client.Counter<'listener'>;
  readonly invalidUtf8: client.Counter<'listener'>;
  readonly dropped: client.Counter<'listener' | 'reason'>;
  readonly truncated: client.Counter<'listener'>;
  readonly emptyFrames: client.Counter<'listener'>;
  readonly connectionsTotal: client.Counter<'listener'>;
  readonly refused: client.Counter<'listener' | 'reason'>;
  readonly records: client.Counter<'route' | 'destination' | 'stream'>;
  readonly filtered: client.Counter<'listener'>;
  readonly unrouted: client.Counter<'listener'>;
  readonly backpressure: client.Counter<'listener'>;
  readonly relpAcks: client.Counter<'listener'>;

  constructor(registry: Registry, state: SyslogState) {
    const registers = [registry];
    const { counter } = seriesOn(registry);
    this.messages = counter('portcullis_syslog_messages_total', 'Messages received, by listener and format (rfc5424, rfc3164, cef, raw).', [
      'listener',
      'format',
    ]);
    this.bytes = counter('portcullis_syslog_bytes_total', 'Bytes received (framing included).', ['listener']);
    this.parseFailures = counter(
      'portcullis_syslog_parse_failures_total',
      'Messages that looked like a format but did not parse; kept as raw Syslog records.',
      ['listener'],
    );
    this.invalidUtf8 = counter('portcullis_syslog_invalid_utf8_total', 'Messages with bytes that are not UTF-8 (kept, with U+FFFD in their place).', [
      'listener',
    ]);
    this.dropped = counter(
      'portcullis_syslog_dropped_total',
      'Messages not kept: reason udp_kernel (receive buffer overflow), udp_full (spool full or pipeline full), spool_error, framing (rest of a corrupt stream), incomplete (a frame cut by the sender closing).',
      ['listener', 'reason'],
    );
    this.truncated = counter('portcullis_syslog_truncated_total', 'Messages cut to syslog.maxMessageBytes.', ['listener']);
    this.emptyFrames = counter('portcullis_syslog_empty_frames_total', 'Zero-length frames and empty lines, skipped.', ['listener']);
    this.connectionsTotal = counter('portcullis_syslog_connections_total', 'TCP/TLS connections accepted.', ['listener']);
    this.refused = counter(
      'portcullis_syslog_connections_closed_total',
      'Connections closed by the gateway: connection_limit, tls_handshake, idle_timeout, framing, relp_protocol, relp_not_acked.',
      ['listener', 'reason'],
    );
    this.records = counter('portcullis_syslog_records_total', 'Records spooled, by route, destination and DCR stream.', ['route', 'destination', 'stream']);
    this.filtered = counter('portcullis_syslog_filtered_total', 'Messages dropped by a route filter (facility, severity).', ['listener']);
    this.unrouted = counter('portcullis_syslog_unrouted_total', 'Messages that no route takes (not kept).', ['listener']);
    this.backpressure = counter('portcullis_syslog_backpressure_total', 'Times a connection stopped reading because the spool was full.', ['listener']);
    this.relpAcks = counter(
      'portcullis_syslog_relp_acks_total',
      'RELP syslog frames acknowledged (200 OK), each sent once its message was durable in the spool.',
      ['listener'],
    );
    new client.Gauge({
      name: 'portcullis_syslog_connections',
      help: 'Open TCP/TLS connections.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const c of state.connections()) this.set({ listener: c.listener }, c.open);
      },
    });
    new client.Gauge({
      name: 'portcullis_syslog_udp_kernel_drops',
      help: "Datagrams the kernel dropped on a UDP listener's socket (receive buffer full), from /proc/net/udp.",
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const d of state.kernelDrops()) this.set({ listener: d.listener }, d.drops);
      },
    });
    new client.Gauge({
      name: 'portcullis_syslog_paused_connections',
      help: 'Connections not being read because the spool is full or the pipeline is busy.',
      registers,
      collect() {
        this.set(state.pausedConnections());
      },
    });
  }
}

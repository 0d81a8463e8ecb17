/**
 * RELP (rsyslog's Reliable Event Logging Protocol, librelp's doc/relp.md) on one connection:
 * frames `TXNR SP COMMAND SP DATALEN [SP DATA] LF`; `open` is answered with our offers, each
 * `syslog` frame with `TXNR rsp 6 200 OK` only once its message is durable in the spool, `close`
 * with an empty rsp and the end of the connection; at drain the gateway sends the hint
 * `0 serverclose 0`. Responses go out in txnr order.
 *
 * A message that cannot be spooled is not answered at all, and the connection is closed: librelp
 * drops a frame answered with 500 from its resend list (scrsp.c), but sends every unanswered frame
 * again on its next session, which is what keeps the message.
 */
import type { Socket } from 'node:net';
import { Events } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import type { SyslogMetrics } from './metrics.js';
import { SourceLane, type Pipeline, type RateLimitedLog } from './pipeline.js';
import type { ParseBlock } from './parse/task.js';

export interface RelpFrame {
  txnr: number;
  command: string;
  data: Buffer;
  /** DATALEN as sent, when the data was cut to the limit (syslog frames only). */
  cutFrom?: number;
}

export class RelpProtocolError extends Error {}

/** TXNR and DATALEN have at most 9 digits; a command at most 32 letters (relpframe.c). */
const MAX_DIGITS = 9;
const MAX_COMMAND = 32;
/** Data of commands other than syslog (offers, close) is small; a longer one is a broken stream. */
const MAX_CONTROL_DATA = 4096;
/** The txnr after 999,999,999 is 1 (relp.md). */
const MAX_TXNR = 999_999_999;
const LF = 0x0a;
const SP = 0x20;

type ReadState = 'txnr' | 'command' | 'datalen' | 'data' | 'trailer';

/**
 * Pure RELP frame reader: feed it reads, it returns the whole frames they complete. A syslog
 * frame longer than `maxMessageBytes` keeps its first `maxMessageBytes` (the rest is skipped,
 * `cutFrom` says so), as TCP syslog cuts a long line: memory stays bounded whatever a sender does.
 */
export class RelpFrameReader {
  #state: ReadState = 'txnr';
  #digits = 0;
  #txnr = 0;
  #command = '';
  #datalen = 0;
  #parts: Buffer[] = [];
  #kept = 0;
  #seen = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True between frames (nothing of a frame held). */
  get atBoundary(): boolean {
    return this.#state === 'txnr' && this.#digits === 0;
  }

  /** Throws RelpProtocolError when the stream is not RELP (the caller closes the connection). */
  push(chunk: Buffer): RelpFrame[] {
    const out: RelpFrame[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#state === 'data') {
        const n = Math.min(this.#datalen - this.#seen, chunk.length - pos);
        const keep = Math.min(n, this.#limit() - this.#kept);
        if (keep > 0) {
          // Copied: a read's buffer must not be pinned by a frame that is still arriving.
          this.#parts.push(Buffer.from(chunk.subarray(pos, pos + keep)));
          this.#kept += keep;
        }
        this.#seen += n;
        pos += n;
        if (this.#seen === this.#datalen) this.#state = 'trailer';
        continue;
      }
      const c = chunk[pos++] ?? 0;
      switch (this.#state) {
        case 'txnr':
          if (c >= 0x30 && c <= 0x39) {
            if (++this.#digits > MAX_DIGITS) throw new RelpProtocolError(`txnr longer than ${MAX_DIGITS} digits`);
            this.#txnr = this.#txnr * 10 + (c - 0x30);
          } else if (c === SP && this.#digits > 0) {
            this.#state = 'command';
          } else {
            throw new RelpProtocolError(`a frame does not start with a txnr (byte 0x${c.toString(16).padStart(2, '0')})`);
          }
          break;
        case 'command':
          if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) {
            if (this.#command.length >= MAX_COMMAND) throw new RelpProtocolError(`command longer than ${MAX_COMMAND} letters`);
            this.#command += String.fromCharCode(c);
          } else if (c === SP && this.#command.length > 0) {
            this.#state = 'datalen';
            this.#digits = 0;
          } else {
            throw new RelpProtocolError('malformed command');
          }
          break;
        case 'datalen':
          if (c >= 0x30 && c <= 0x39) {
            if (++this.#digits > MAX_DIGITS) throw new RelpProtocolError(`DATALEN longer than ${MAX_DIGITS} digits`);
            this.#datalen = this.#datalen * 10 + (c - 0x30);
          } else if (this.#digits === 0) {
            throw new RelpProtocolError('missing DATALEN');
          } else if (this.#datalen === 0) {
            // No data: this byte is the trailer.
            if (c !== LF) throw new RelpProtocolError('frame without data does not end with LF');
            out.push(this.#finish());
          } else if (c === SP) {
            if (this.#command !== 'syslog' && this.#datalen > MAX_CONTROL_DATA)
              throw new RelpProtocolError(`${this.#command} frame with ${this.#datalen} bytes of data (at most ${MAX_CONTROL_DATA})`);
            this.#state = 'data';
          } else {
            throw new RelpProtocolError('malformed DATALEN');
          }
          break;
        case 'trailer':
          if (c !== LF) throw new RelpProtocolError('frame does not end with LF where DATALEN says');
          out.push(this.#finish());
          break;
      }
    }
    return out;
  }

  #limit(): number {
    return this.#command === 'syslog' ? this.maxMessageBytes : MAX_CONTROL_DATA;
  }

  #finish(): RelpFrame {
    const data = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#kept);
    const frame: RelpFrame = { txnr: this.#txnr, command: this.#command, data };
    if (this.#datalen > this.#kept) frame.cutFrom = this.#datalen;
    this.#state = 'txnr';
    this.#digits = 0;
    this.#txnr = 0;
    this.#command = '';
    this.#datalen = 0;
    this.#parts = [];
    this.#kept = 0;
    this.#seen = 0;
    return frame;
  }
}

/** The offers of an `open` frame: `name=value,value` lines. */
export function parseOffers(data: Buffer): Map<string, string[]> {
  const offers = new Map<string, string[]>();
  for (const line of data.toString('latin1').split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq);
    offers.set(name, eq < 0 || eq === line.length - 1 ? [] : line.slice(eq + 1).split(','));
  }
  return offers;
}

/** One response frame. */
export function rspFrame(txnr: number, body: string): Buffer {
  const data = Buffer.from(body, 'latin1');
  return Buffer.concat([Buffer.from(data.length > 0 ? `${txnr} rsp ${data.length} ` : `${txnr} rsp 0`, 'latin1'), data, Buffer.from([LF])]);
}

export const SERVERCLOSE = Buffer.from('0 serverclose 0\n', 'latin1');
const ACK = '200 OK';

export interface RelpSessionDeps {
  pipeline: Pipeline;
  listener: string;
  sourceIp: string;
  maxMessageBytes: number;
  idleTimeoutMs: () => number;
  candidates: () => ParseBlock['candidates'];
  metrics: SyslogMetrics | null;
  logger: Logger;
  tooLong: RateLimitedLog;
}

/** Whole syslog frames handed on at this size even within one event-loop turn (as the TCP listener does). */
const BLOCK_BYTES = 256 * 1024;
/** How long a drained connection waits for the sender to take the last acks before it is cut. */
const FINISH_MS = 1_000;

interface Pending {
  txnr: number;
  /** The rsp body once known (null: the message is not spooled yet). */
  body: string | null;
  /** The connection ends after this response (close). */
  last?: boolean;
}

/**
 * One RELP connection: frames in, messages through the source's ordered lane to the spool,
 * responses out in txnr order. The listener owns the connection cap; this owns the socket's
 * handlers (data, timeout, error, close).
 */
export class RelpSession {
  readonly lane: SourceLane;
  readonly #reader: RelpFrameReader;
  /** Responses owed, in txnr order; written from the head as they become known. */
  #pending: Pending[] = [];
  #expected = 1;
  #open = false;
  /** close received or the connection given up: further frames are ignored. */
  #ended = false;
  #blockParts: Buffer[] = [];
  #blockBytes = 0;
  #blockEntries: Pending[] = [];
  #flushing: NodeJS.Immediate | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly deps: RelpSessionDeps,
  ) {
    this.#reader = new RelpFrameReader(deps.maxMessageBytes);
    this.lane = new SourceLane(
      deps.pipeline,
      deps.listener,
      {
        pause: () => {
          socket.pause();
          // A paused connection is not idle: the gateway is the one not reading.
          socket.setTimeout(0);
        },
        resume: () => {
          if (socket.destroyed || this.#ended) return;
          socket.setTimeout(deps.idleTimeoutMs());
          socket.resume();
        },
      },
      true,
    );
    socket.setTimeout(deps.idleTimeoutMs());
    socket.on('timeout', () => {
      deps.metrics?.refused.inc({ listener: deps.listener, reason: 'idle_timeout' });
      deps.logger.debug(
        { event: Events.SYSLOG_IDLE, code: 'PCL_ERR_SYSLOG_IDLE', listener: deps.listener, source: deps.sourceIp },
        'idle RELP connection closed',
      );
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      // The sender is gone: what it sent is spooled; acks can no longer reach it.
      this.#flush();
      void this.lane.idle().then(() => socket.end());
    });
    socket.on('error', (err) => {
      deps.logger.debug({ event: Events.SYSLOG_SOCKET_ERROR, listener: deps.listener, source: deps.sourceIp, err }, 'RELP connection error');
    });
    socket.on('close', () => {
      this.lane.stopping = true;
      this.#flush();
      deps.logger.debug(
        { event: Events.SYSLOG_RELP_SESSION, listener: deps.listener, source: deps.sourceIp, txnr: this.#expected - 1, unanswered: this.#pending.length },
        'RELP session ended',
      );
    });
  }

  /** Drain, step 1: stop reading; what was read goes on to the spool (and is acknowledged). */
  stopReading(): void {
    this.socket.pause();
    this.#flush();
  }

  /** Drain, step 2 (after lane.idle()): the acks owed are written, then the serverclose hint, then the end. */
  async finish(): Promise<void> {
    this.lane.stopping = true;
    const socket = this.socket;
    if (socket.destroyed) return;
    if (!this.#ended && socket.writable) socket.write(SERVERCLOSE);
    this.#ended = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy();
        resolve();
      }, FINISH_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  #onData(chunk: Buffer): void {
    const { metrics, listener } = this.deps;
    metrics?.bytes.inc({ listener }, chunk.length);
    if (this.#ended) return;
    let frames: RelpFrame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (err) {
      if (!(err instanceof RelpProtocolError)) throw err;
      // What came before in this read is lost with the connection, unacknowledged: the sender sends it again.
      this.#abort(err.message);
      return;
    }
    for (const f of frames) {
      this.#onFrame(f);
      if (this.#ended) break;
    }
    if (this.#blockBytes >= BLOCK_BYTES) this.#flush();
    else if (this.#blockBytes > 0) this.#flushing ??= setImmediate(() => this.#flush());
  }

  #onFrame(f: RelpFrame): void {
    if (f.txnr === 0) return; // A hint from the client: nothing to answer.
    if (f.txnr !== this.#expected) return this.#abort(`txnr ${f.txnr} where ${this.#expected} was due`);
    this.#expected = this.#expected === MAX_TXNR ? 1 : this.#expected + 1;
    switch (f.command) {
      case 'open':
        return this.#onOpen(f);
      case 'syslog':
        if (!this.#open) return this.#refuse(f.txnr, '500 command disabled: no open', 'syslog frame before open');
        return this.#onSyslog(f);
      case 'close':
        this.#flush();
        this.#pending.push({ txnr: f.txnr, body: '', last: true });
        this.#ended = true;
        this.#writeReady();
        return;
      default:
        return this.#refuse(f.txnr, `500 command not supported: ${f.command}`, `unsupported command "${f.command}"`);
    }
  }

  #onOpen(f: RelpFrame): void {
    if (this.#open) return this.#refuse(f.txnr, '500 protocol error: connection already open', 'a second open');
    const offers = parseOffers(f.data);
    const version = Number(offers.get('relp_version')?.[0] ?? 'x');
    if (!Number.isInteger(version) || version < 0)
      return this.#refuse(f.txnr, '500 relp_version offer missing or invalid', 'open without a valid relp_version offer');
    if (!(offers.get('commands') ?? []).includes('syslog'))
      return this.#refuse(f.txnr, '500 required command not supported by client', 'open without commands=syslog');
    this.#open = true;
    // Never a newer version than the client's: librelp's client refuses one.
    const body = `200 OK\nrelp_version=${Math.min(version, 1)}\nrelp_software=portcullis\ncommands=syslog`;
    this.#pending.push({ txnr: f.txnr, body });
    this.deps.logger.debug(
      { event: Events.SYSLOG_RELP_SESSION, listener: this.deps.listener, source: this.deps.sourceIp, software: offers.get('relp_software')?.join(',') ?? '' },
      'RELP session opened',
    );
    this.#writeReady();
  }

  #onSyslog(f: RelpFrame): void {
    const { metrics, listener } = this.deps;
    if (f.cutFrom !== undefined) {
      metrics?.truncated.inc({ listener });
      this.deps.tooLong.hit(1, { listener, code: 'PCL_ERR_SYSLOG_TOO_LONG', maxMessageBytes: this.deps.maxMessageBytes });
    }
    const entry: Pending = { txnr: f.txnr, body: null };
    this.#pending.push(entry);
    if (f.data.length === 0) {
      metrics?.emptyFrames.inc({ listener });
      entry.body = ACK;
      this.#writeReady();
      return;
    }
    // Octet-counted, as the pool splits TCP streams and UDP datagrams.
    const header = Buffer.from(`${f.data.length} `, 'latin1');
    this.#blockParts.push(header, f.data);
    this.#blockBytes += header.length + f.data.length;
    this.#blockEntries.push(entry);
  }

  /** Hands the syslog frames read so far to the lane; their acks are written once they are spooled. */
  #flush(): void {
    if (this.#flushing) clearImmediate(this.#flushing);
    this.#flushing = null;
    if (this.#blockBytes === 0) return;
    const block: ParseBlock = {
      mode: 'octet',
      bytes: Buffer.concat(this.#blockParts, this.#blockBytes),
      sourceIp: this.deps.sourceIp,
      candidates: this.deps.candidates(),
    };
    const entries = this.#blockEntries;
    this.#blockParts = [];
    this.#blockBytes = 0;
    this.#blockEntries = [];
    this.lane.push([block], (kept) => {
      if (!kept) return this.#notAcked(entries.length);
      for (const e of entries) e.body = ACK;
      this.#writeReady();
    });
  }

  /** Writes the responses at the head of the queue that are known (txnr order). */
  #writeReady(): void {
    const out: Buffer[] = [];
    let acks = 0;
    let last = false;
    while (this.#pending.length > 0) {
      const head = this.#pending[0];
      if (!head || head.body === null) break;
      this.#pending.shift();
      out.push(rspFrame(head.txnr, head.body));
      if (head.body === ACK) acks++;
      if (head.last) {
        last = true;
        break;
      }
    }
    if (out.length === 0 || !this.socket.writable) return;
    if (acks > 0) this.deps.metrics?.relpAcks.inc({ listener: this.deps.listener }, acks);
    const bytes = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    if (last) this.socket.end(bytes);
    else this.socket.write(bytes);
  }

  /** Messages that could not be spooled: not acknowledged; closing makes the sender send them again. */
  #notAcked(messages: number): void {
    if (this.socket.destroyed) return;
    const { metrics, listener } = this.deps;
    metrics?.refused.inc({ listener, reason: 'relp_not_acked' });
    this.deps.logger.warn(
      { event: Events.SYSLOG_RELP_NOT_ACKED, code: 'PCL_ERR_SYSLOG_RELP_NOT_ACKED', listener, source: this.deps.sourceIp, messages },
      'RELP messages could not be spooled: not acknowledged, connection closed (the sender sends them again)',
    );
    this.#ended = true;
    this.lane.stopping = true;
    this.socket.destroy();
  }

  /** A command we answer with 500, then close: the session cannot go on. */
  #refuse(txnr: number, body: string, detail: string): void {
    this.#flush();
    this.#pending.push({ txnr, body, last: true });
    this.#protocolError(detail);
    this.#writeReady();
  }

  #abort(detail: string): void {
    this.#protocolError(detail);
    this.lane.stopping = true;
    this.socket.destroy();
  }

  #protocolError(detail: string): void {
    const { metrics, listener } = this.deps;
    this.#ended = true;
    metrics?.refused.inc({ listener, reason: 'relp_protocol' });
    this.deps.logger.warn(
      { event: Events.SYSLOG_RELP_PROTOCOL, code: 'PCL_ERR_SYSLOG_RELP_PROTOCOL', listener, source: this.deps.sourceIp, detail },
      'RELP protocol error: connection closed',
    );
  }
}

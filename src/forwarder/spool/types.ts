import type { Logger } from '../../log/logger.js';

export type FsyncMode = 'always' | 'interval' | 'never';

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  /** A segment is closed and a new one started past this size. Default 16 MiB. */
  segmentBytes?: number;
  fsync: FsyncMode;
  /** How often 'interval' mode fdatasyncs. Default 1000. */
  fsyncIntervalMs?: number;
  logger: Logger;
}

export interface AppendItem {
  stream: string;
  records: number;
  /** Written without a copy: do not modify it until append() has settled. */
  payload: Uint8Array;
  /**
   * The payload is a whole upstream request body (the gzip of a JSON array) to be sent as it is:
   * take() hands a sealed entry out alone, never joined with others. Otherwise (the default) the
   * payload is JSON records joined by ','.
   */
  sealed?: boolean;
  /**
   * The payload is a deflate run (pool/gzip.ts deflateRun: the CRC-32 and length of records
   * joined by ',', then their raw DEFLATE ending in a sync flush). Batched like records, counted
   * by the JSON length it stands for; stitched into the batch's gzip without compressing again.
   */
  deflated?: boolean;
  /**
   * Written and made durable like any entry, but not handed out by take() (and nothing after it
   * in its stream is) until Spool.settle() says it is valid, or drops it. For an upload spooled
   * while it is still being checked. After a restart every sealed entry is held until checked
   * again (Spool.verifyHeld), since its check may not have finished before the crash.
   */
  held?: boolean;
}

export interface SpoolEntry extends AppendItem {
  readonly id: number;
  readonly appendedAt: number;
}

/**
 * A taken entry by where it is on disk, without its payload: a pool thread reads and joins the
 * payloads of a batch itself (their bytes never pass through the event loop's thread). The file
 * stays in place while the entry is taken: a segment is deleted only once nothing in it is live.
 */
export interface SpoolEntryRef extends Omit<SpoolEntry, 'payload'> {
  /** The segment file and the payload's [offset, offset + length) in it. */
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** Bytes of the records' JSON (length, or what a deflate run inflates to). */
  readonly rawLength: number;
}

export interface RecoveryReport {
  /** Segment files found on open. */
  segments: number;
  /** Entries recovered (not yet acknowledged). */
  entries: number;
  /** Records in the recovered entries. */
  records: number;
  tornTails: number;
  corruptFrames: number;
  /** Exact where the frame header was readable; frames with no readable header add 0 here. */
  lostRecords: number;
  lostBytes: number;
}

export interface PendingInfo {
  entries: number;
  bytes: number;
  /** Sealed entries among them. */
  sealed: number;
  /** Held entries among them (AppendItem.held): take() stops at the first one. */
  held: number;
  oldestAppendedAt: number | null;
}

export interface SpoolStats {
  /** Bytes of segment files on disk (reclaimed when every entry of a segment is acknowledged). */
  bytes: number;
  maxBytes: number;
  segments: number;
  /** False after a disk error until an append succeeds again (drives /readyz). */
  healthy: boolean;
  lastError: string | null;
  pendingEntries: number;
  pendingBytes: number;
  /** Counters since open, for metrics. */
  appends: number;
  fsyncs: number;
  refusedFull: number;
  ioErrors: number;
}

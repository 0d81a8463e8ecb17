/**
 * The part of the Spool (spool/, the design's API) the pipeline uses. Structural, so the ingest,
 * batcher and sender depend on the contract, not on the spool's internals.
 */
import type { AppendItem, SpoolEntry, SpoolEntryRef } from './spool/types.js';

export type { AppendItem, SpoolEntry, SpoolEntryRef };

export interface SpoolPort {
  /** Durable per the fsync mode when it resolves; rejects PCL_ERR_SPOOL_FULL / PCL_ERR_SPOOL_IO. */
  append(items: AppendItem[]): Promise<SpoolEntry[]>;
  /** append(), but a full spool answers null at once (nothing queued). Appends are written in call order. */
  tryAppend(items: AppendItem[]): Promise<SpoolEntry[]> | null;
  /** The next entries of a stream, by where they are on disk (a pool thread reads them). */
  takeRefs(stream: string, maxBytes: number, maxEntries?: number): SpoolEntryRef[];
  /** The payloads of entries taken with takeRefs(). */
  read(refs: readonly SpoolEntryRef[]): Promise<SpoolEntry[]>;
  release(ids: number[]): void;
  ack(ids: number[]): Promise<void>;
  /** A held entry's verdict: its record count lets it be sent; null drops it. */
  settle(id: number, records: number | null): Promise<void>;
  /** Checks and settles every held entry (after a restart); see Spool.verifyHeld. */
  verifyHeld(check: (payload: Uint8Array) => Promise<number | null>): Promise<{ kept: number; dropped: number; failed: number }>;
  streams(): string[];
  pending(stream?: string): { entries: number; bytes: number; sealed: number; held: number; oldestAppendedAt: number | null };
  /** refusedFull: appends refused for the byte limit since the spool opened. */
  stats(): { bytes: number; maxBytes: number; segments: number; healthy: boolean; pendingEntries: number; pendingBytes: number; refusedFull: number };
  onAppend(listener: (stream: string) => void): void;
  close(): Promise<void>;
}

import type { Segment } from './segment.js';

/** What the spool keeps in memory per pending entry: where it is on disk, never the payload. */
export interface IndexEntry {
  readonly id: number;
  readonly stream: string;
  /** 0 for an entry held before its upload was counted (settle() sets it). */
  records: number;
  readonly appendedAt: number;
  readonly segment: Segment;
  /** Offset of the payload in the segment file. */
  readonly offset: number;
  readonly length: number;
  /** A whole request body, taken alone (AppendItem.sealed). */
  readonly sealed: boolean;
  /** A deflate run (AppendItem.deflated). */
  readonly deflated: boolean;
  /** Bytes of the records' JSON: what counts towards a batch's size. */
  readonly rawLength: number;
  /** 'held': written, not handed out until Spool.settle() says it is valid (AppendItem.held). */
  state: 'held' | 'queued' | 'taken' | 'acking';
}

/**
 * Pending entries of one stream in append (= id) order. Untaken entries sit in a sorted array
 * consumed from `head` (no O(n) shift per take); released entries are merged back in id order so
 * a retry goes out before newer data.
 */
export class StreamQueue {
  private queued: IndexEntry[] = [];
  private head = 0;
  readonly taken = new Map<number, IndexEntry>();
  /** Entries and payload bytes pending (held, queued, taken or being acked). */
  entries = 0;
  bytes = 0;
  sealed = 0;
  /** Held entries among them (not handed out yet). */
  held = 0;

  push(e: IndexEntry): void {
    this.queued.push(e);
    this.entries++;
    this.bytes += e.length;
    if (e.sealed) this.sealed++;
    if (e.state === 'held') this.held++;
  }

  /** A held entry may now be handed out, in its place (before anything appended after it). */
  unhold(e: IndexEntry): void {
    if (e.state !== 'held') return;
    e.state = 'queued';
    this.held--;
  }

  /**
   * Oldest queued entries, total payload <= maxBytes (at least one), at most maxEntries. A sealed
   * entry is taken alone: it ends a take before it, and a take that starts with it holds only it.
   * A held entry stops the take: nothing passes it, so the order holds.
   */
  take(maxBytes: number, maxEntries: number): IndexEntry[] {
    const out: IndexEntry[] = [];
    let bytes = 0;
    while (this.head < this.queued.length && out.length < maxEntries) {
      const e = this.queued[this.head];
      if (e === undefined || e.state === 'held') break;
      if (out.length > 0 && (e.sealed || bytes + e.rawLength > maxBytes)) break;
      this.head++;
      bytes += e.rawLength;
      e.state = 'taken';
      this.taken.set(e.id, e);
      out.push(e);
      if (e.sealed) break;
    }
    this.compact();
    return out;
  }

  /** Taken entries go back to the queue, in id order. */
  release(es: IndexEntry[]): void {
    const back = es.filter((e) => this.taken.delete(e.id));
    if (back.length === 0) return;
    for (const e of back) e.state = 'queued';
    const rest = this.queued.slice(this.head);
    back.sort((a, b) => a.id - b.id);
    const merged: IndexEntry[] = [];
    let i = 0;
    let j = 0;
    while (i < back.length || j < rest.length) {
      const a = back[i];
      const b = rest[j];
      if (b === undefined || (a !== undefined && a.id < b.id)) {
        if (a !== undefined) merged.push(a);
        i++;
      } else {
        merged.push(b);
        j++;
      }
    }
    this.queued = merged;
    this.head = 0;
  }

  /** Removes an entry from queue/taken before its ack is written (so it is not handed out again). */
  detach(e: IndexEntry): void {
    if (e.state === 'taken') this.taken.delete(e.id);
    else if (e.state === 'queued' || e.state === 'held') {
      if (e.state === 'held') this.held--;
      const i = this.indexOfQueued(e.id);
      if (i >= 0) this.queued.splice(i, 1);
    }
    e.state = 'acking';
  }

  /** The entry was acknowledged: it leaves the counts. */
  forget(e: IndexEntry): void {
    this.entries--;
    this.bytes -= e.length;
    if (e.sealed) this.sealed--;
  }

  oldestAppendedAt(): number | null {
    let oldest: number | null = null;
    const first = this.queued[this.head];
    if (first !== undefined) oldest = first.appendedAt;
    for (const e of this.taken.values()) if (oldest === null || e.appendedAt < oldest) oldest = e.appendedAt;
    return oldest;
  }

  private indexOfQueued(id: number): number {
    let lo = this.head;
    let hi = this.queued.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.queued[mid];
      if (m === undefined) return -1;
      if (m.id === id) return mid;
      if (m.id < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queued.length) {
      this.queued = this.queued.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * A route's spool entries as a pool thread builds them: records' JSON joined by ',', written
 * straight into one scratch buffer (no string per entry, no join-then-encode). An entry closes
 * before the record that would take it past `target` bytes; a record alone may be up to `max`
 * (the upstream batch limit). Entries much smaller than a batch let the batcher fill batches: an
 * entry is never split, so a batch of entries near half its size would go out half full. The byte
 * fast path (fast.ts) writes a record in place at `recordStart()` and calls `commit`; the plain
 * path hands a JSON string to `addString`.
 */

/** Room past `max` for one record the fast path writes before its size is known (fast.ts bounds it). */
export const RECORD_HEADROOM = 512 * 1024;

const COMMA = 0x2c;
const spare: Buffer[] = [];

/** An entry's bytes as they leave the builder: a view on the scratch buffer in, a buffer of its own out. */
export type SealEntry = (json: Uint8Array) => Uint8Array;

/** A copy with an ArrayBuffer of its own: it is moved to the main thread. */
const copyEntry: SealEntry = (json) => new Uint8Array(json);

export class EntryBuilder {
  readonly entries: Array<{ records: number; payload: Uint8Array }> = [];
  records = 0;
  /** The scratch buffer; the current entry is buf[0, len). */
  buf: Buffer;
  len = 0;
  #inEntry = 0;

  readonly target: number;

  /**
   * `seal` makes each closed entry's payload from the scratch buffer's view (the pool thread
   * deflates it there: the JSON is never copied); by default a copy.
   */
  constructor(
    readonly max: number,
    target = max,
    private readonly seal: SealEntry = copyEntry,
  ) {
    this.target = Math.min(target, max);
    const want = max + RECORD_HEADROOM;
    const reused = spare.pop();
    this.buf = reused && reused.length >= want ? reused : Buffer.allocUnsafeSlow(want);
  }

  /** Where the next record's first byte goes (after the comma that will separate it). */
  recordStart(): number {
    return this.#inEntry > 0 ? this.len + 1 : this.len;
  }

  /** The record written at [recordStart(), end) joins the entry, or starts the next one when it would overflow it. */
  commit(end: number): void {
    const start = this.recordStart();
    if (this.#inEntry > 0 && end > this.target) {
      this.#flushEntry();
      this.buf.copyWithin(0, start, end);
      this.len = end - start;
    } else {
      if (this.#inEntry > 0) this.buf[this.len] = COMMA;
      this.len = end;
    }
    this.#inEntry++;
    this.records++;
  }

  addString(json: string): void {
    const bytes = Buffer.byteLength(json);
    if (this.#inEntry > 0 && this.len + 1 + bytes > this.target) this.#flushEntry();
    const start = this.recordStart();
    if (start + bytes > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(start + bytes + RECORD_HEADROOM);
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf.write(json, start, 'utf8');
    this.commit(start + bytes);
  }

  /** Records in the current entry. */
  get inEntry(): number {
    return this.#inEntry;
  }

  /** The native path wrote records into buf itself: the entry is buf[0, len) with inEntry records, `added` of them new. */
  wrote(len: number, inEntry: number, added: number): void {
    this.len = len;
    this.#inEntry = inEntry;
    this.records += added;
  }

  /** Closes the current entry (the native path found the next record does not fit it). */
  closeEntry(): void {
    this.#flushEntry();
  }

  /** Closes the last entry and gives the scratch buffer back for the next builder in this thread. */
  finish(): void {
    this.#flushEntry();
    spare.push(this.buf);
  }

  #flushEntry(): void {
    if (this.#inEntry === 0) return;
    this.entries.push({ records: this.#inEntry, payload: this.seal(this.buf.subarray(0, this.len)) });
    this.len = 0;
    this.#inEntry = 0;
  }
}

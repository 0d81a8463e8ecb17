/**
 * TCP syslog framing (RFC 6587), per connection: octet counting ("<len> <msg>") when the
 * connection's first byte is a digit, otherwise non-transparent framing (one message per line,
 * LF ends it; a CR before the LF and NUL terminators are trimmed by the parser). Pure: the
 * listener feeds it reads, it hands back blocks of whole frames, so any split of a stream into
 * reads gives the same messages.
 *
 * A block is handed to a pool thread whole; splitBlock() cuts it into messages there. Over-long
 * messages are truncated to maxMessageBytes (the rest is skipped, counted), so memory stays bounded
 * whatever a sender does: a never-ending line holds at most maxMessageBytes.
 */

export type FramingMode = 'octet' | 'newline';

export interface FramerCounters {
  /** Messages cut to maxMessageBytes. */
  truncated: number;
  /** Zero-length frames ("0 " or an empty line), skipped. */
  empty: number;
}

export interface FramedBlock {
  readonly mode: FramingMode;
  /** Whole frames, in the mode's encoding (octet: "<len> <msg>" each; newline: "<msg>\n" each). */
  readonly bytes: Buffer;
}

/** Longest octet count accepted: 9 digits (the RFC's MSG-LEN has no bound; ours is maxMessageBytes). */
const MAX_LEN_DIGITS = 9;
const LF = 0x0a;
const SP = 0x20;

export class FramingError extends Error {}

export class Framer {
  mode: FramingMode | null = null;
  readonly counters: FramerCounters = { truncated: 0, empty: 0 };
  /** Whole frames ready for the next block. */
  #out: Buffer[] = [];
  #outBytes = 0;
  /** An incomplete frame (newline mode: a line without its LF; octet: a header or a body in progress). */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  /** Newline mode: the current line passed the limit; bytes are skipped until its LF. */
  #skippingLine = false;
  /** Octet mode: body bytes still to keep, then to skip, of the frame in progress (-1 = reading a header). */
  #keep = -1;
  #skip = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Bytes held for an incomplete frame (bounded by maxMessageBytes plus a header). */
  get held(): number {
    return this.#partialBytes;
  }

  /** Feeds one read. Throws FramingError when an octet-counted stream is corrupt (the caller closes). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.mode === null) {
      const first = chunk[0] ?? 0;
      this.mode = first >= 0x30 && first <= 0x39 ? 'octet' : 'newline';
    }
    if (this.mode === 'newline') this.#pushLines(chunk);
    else this.#pushOctets(chunk);
  }

  /** The whole frames read so far as one block (null if none); the framer keeps any partial frame. */
  take(): FramedBlock | null {
    if (this.#outBytes === 0 || this.mode === null) return null;
    const bytes = this.#out.length === 1 ? (this.#out[0] as Buffer) : Buffer.concat(this.#out, this.#outBytes);
    this.#out = [];
    this.#outBytes = 0;
    return { mode: this.mode, bytes };
  }

  /** Bytes of whole frames waiting for take(). */
  get ready(): number {
    return this.#outBytes;
  }

  /** At the end of the stream: a last line without its LF is a message too (octet mode: an incomplete frame is lost, counted by the caller). */
  end(): { unterminated: number } {
    let unterminated = 0;
    if (this.mode === 'newline' && this.#partialBytes > 0 && !this.#skippingLine) {
      this.#emit(Buffer.concat([...this.#partial, Buffer.from([LF])]));
    } else if (this.mode === 'octet' && (this.#partialBytes > 0 || this.#keep > 0)) {
      unterminated = this.#partialBytes;
    }
    this.#partial = [];
    this.#partialBytes = 0;
    return { unterminated };
  }

  #emit(b: Buffer): void {
    this.#out.push(b);
    this.#outBytes += b.length;
  }

  #pushLines(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf < 0) {
        this.#holdLine(chunk.subarray(pos));
        return;
      }
      if (this.#skippingLine) {
        this.#skippingLine = false;
      } else if (this.#partialBytes === 0) {
        const lineLen = lf - pos;
        if (lineLen === 0) this.counters.empty++;
        else if (lineLen <= this.maxMessageBytes) {
          // Consecutive whole lines of this read stay one slice: no copy per message.
          let end = lf + 1;
          for (;;) {
            const next = chunk.indexOf(LF, end);
            if (next < 0 || next === end || next - end > this.maxMessageBytes) break;
            end = next + 1;
          }
          this.#emit(chunk.subarray(pos, end));
          pos = end;
          continue;
        } else {
          this.counters.truncated++;
          this.#emit(Buffer.concat([chunk.subarray(pos, pos + this.maxMessageBytes), Buffer.from([LF])]));
        }
      } else {
        const rest = chunk.subarray(pos, lf);
        const total = this.#partialBytes + rest.length;
        if (total === 0) this.counters.empty++;
        else if (total <= this.maxMessageBytes) this.#emit(Buffer.concat([...this.#partial, rest, Buffer.from([LF])]));
        else {
          // #holdLine keeps at most maxMessageBytes; this line is being truncated.
          this.counters.truncated++;
          const room = this.maxMessageBytes - this.#partialBytes;
          this.#emit(Buffer.concat([...this.#partial, rest.subarray(0, Math.max(0, room)), Buffer.from([LF])]));
        }
        this.#partial = [];
        this.#partialBytes = 0;
      }
      pos = lf + 1;
    }
  }

  /** A line without its LF yet: kept up to maxMessageBytes; past that it is emitted truncated and the rest skipped. */
  #holdLine(part: Buffer): void {
    if (this.#skippingLine || part.length === 0) return;
    const room = this.maxMessageBytes - this.#partialBytes;
    if (part.length <= room) {
      // Copied: the read's buffer must not be pinned by a slow line.
      this.#partial.push(Buffer.from(part));
      this.#partialBytes += part.length;
      return;
    }
    this.counters.truncated++;
    this.#emit(Buffer.concat([...this.#partial, part.subarray(0, room), Buffer.from([LF])]));
    this.#partial = [];
    this.#partialBytes = 0;
    this.#skippingLine = true;
  }

  #pushOctets(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#keep < 0 && this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - pos);
        this.#skip -= n;
        pos += n;
        continue;
      }
      if (this.#keep < 0) {
        // Reading "<digits> ".
        const sp = chunk.indexOf(SP, pos);
        const end = sp < 0 ? chunk.length : sp;
        const headerBytes = this.#partialBytes + (end - pos);
        if (headerBytes > MAX_LEN_DIGITS) throw new FramingError(`octet-counting frame header longer than ${MAX_LEN_DIGITS} digits`);
        if (sp < 0) {
          this.#partial.push(Buffer.from(chunk.subarray(pos)));
          this.#partialBytes += chunk.length - pos;
          return;
        }
        const digits = Buffer.concat([...this.#partial, chunk.subarray(pos, sp)]).toString('latin1');
        this.#partial = [];
        this.#partialBytes = 0;
        if (!/^[0-9]+$/.test(digits)) throw new FramingError(`octet-counting frame header is not a number (${JSON.stringify(digits.slice(0, 12))})`);
        const len = Number(digits);
        pos = sp + 1;
        if (len === 0) {
          this.counters.empty++;
          continue;
        }
        if (len > this.maxMessageBytes) {
          this.counters.truncated++;
          this.#keep = this.maxMessageBytes;
          this.#skip = len - this.maxMessageBytes;
        } else {
          this.#keep = len;
        }
        this.#partial.push(Buffer.from(`${this.#keep} `, 'latin1'));
        this.#partialBytes = 0; // counts body bytes from here
        continue;
      }
      const n = Math.min(this.#keep - this.#partialBytes, chunk.length - pos);
      const body = chunk.subarray(pos, pos + n);
      pos += n;
      if (this.#partialBytes === 0 && n === this.#keep) {
        const header = this.#partial[0] as Buffer;
        this.#emit(Buffer.concat([header, body]));
      } else {
        this.#partial.push(Buffer.from(body));
        this.#partialBytes += n;
        if (this.#partialBytes < this.#keep) return;
        this.#emit(Buffer.concat(this.#partial));
      }
      this.#partial = [];
      this.#partialBytes = 0;
      this.#keep = -1;
    }
  }
}

/**
 * A block -> its messages (in a pool thread). Octet mode: "<len> <msg>" frames as framed (or as
 * the UDP listener packs datagrams); newline mode: lines.
 */
export function splitBlock(mode: FramingMode, bytes: Uint8Array, each: (start: number, end: number) => void): void {
  let pos = 0;
  const n = bytes.length;
  if (mode === 'newline') {
    while (pos < n) {
      let lf = bytes.indexOf(LF, pos);
      if (lf < 0) lf = n;
      if (lf > pos) each(pos, lf);
      pos = lf + 1;
    }
    return;
  }
  while (pos < n) {
    const start = pos;
    let len = 0;
    while (pos < n && bytes[pos] !== SP) {
      const d = (bytes[pos] ?? 0) - 0x30;
      if (d < 0 || d > 9) {
        // Not an octet count: the framer never makes such a block, but a loop here must not be
        // able to run backwards. What is left is one message.
        each(start, n);
        return;
      }
      len = len * 10 + d;
      pos++;
    }
    pos++;
    const end = Math.min(n, pos + len);
    if (end > pos) each(pos, end);
    pos = Math.max(end, pos);
  }
}

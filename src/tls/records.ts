/**
 * The TLS record layer, read from one direction of a tunnel without decrypting anything: records
 * (RFC 8446 §5.1, RFC 5246 §6.2) are reassembled into handshake messages, which may be split over
 * several records and several TCP reads. Only the cleartext start of a handshake is ever read
 * here, so everything is bounded: past `maxBytes` the stream gives up (`too_large`).
 */

export const CONTENT_CHANGE_CIPHER_SPEC = 20;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;
export const CONTENT_APPLICATION_DATA = 23;

/** RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes; ciphertext up to 2^14 + 256 (2048 in TLS 1.2). */
const MAX_RECORD = 16384 + 2048;
const HEADER = 5;

export type TlsEvent =
  /** A whole handshake message; `end` is the stream offset just past the record that completed it. */
  | { readonly kind: 'message'; readonly type: number; readonly body: Buffer; readonly end: number }
  /** A whole record that is not a handshake record (change_cipher_spec, alert, application data). */
  | { readonly kind: 'record'; readonly contentType: number; readonly end: number }
  /** Not TLS (the first byte is not a handshake record), malformed, or past the bound. */
  | { readonly kind: 'error'; readonly error: 'not_tls' | 'malformed' | 'too_large'; readonly detail: string }
  /** More bytes are needed. */
  | { readonly kind: 'more' };

const MORE: TlsEvent = Object.freeze({ kind: 'more' });

/** Reads records and handshake messages from the bytes of one direction, pushed as they arrive. */
export class HandshakeStream {
  /** Unparsed bytes (from stream offset `base`). */
  private raw: Buffer = Buffer.alloc(0);
  private base = 0;
  /** Handshake bytes from records read, not yet returned as messages. */
  private hs: Buffer = Buffer.alloc(0);
  /** Stream offset just past the last record parsed. */
  private recordEnd = 0;
  private failed: TlsEvent | null = null;

  constructor(private readonly maxBytes: number) {}

  /** Bytes pushed so far. */
  get pushed(): number {
    return this.base + this.raw.length;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.raw = this.raw.length === 0 ? chunk : Buffer.concat([this.raw, chunk]);
  }

  /** The next message or record, or why not. Never throws, whatever was pushed. */
  next(): TlsEvent {
    if (this.failed) return this.failed;
    for (;;) {
      const msg = this.message();
      if (msg) return msg;
      const first = this.raw[0];
      // The first byte alone tells a stream that is not TLS: decide on it, without waiting for a header.
      if (this.recordEnd === 0 && first !== undefined && first !== CONTENT_HANDSHAKE) {
        return this.fail('not_tls', `first byte 0x${first.toString(16).padStart(2, '0')} is not a TLS handshake record`);
      }
      if (this.raw.length < HEADER) return this.moreOrTooLarge();
      const type = this.raw[0] ?? 0;
      const major = this.raw[1] ?? 0;
      const length = ((this.raw[3] ?? 0) << 8) | (this.raw[4] ?? 0);
      if (type < CONTENT_CHANGE_CIPHER_SPEC || type > CONTENT_APPLICATION_DATA) return this.fail('malformed', `record type ${type}`);
      if (major !== 3) return this.fail(this.recordEnd === 0 ? 'not_tls' : 'malformed', `record version ${major}.${this.raw[2] ?? 0}`);
      if (length === 0 || length > MAX_RECORD) return this.fail('malformed', `record length ${length}`);
      if (this.raw.length < HEADER + length) return this.moreOrTooLarge();
      const fragment = this.raw.subarray(HEADER, HEADER + length);
      this.raw = this.raw.subarray(HEADER + length);
      this.base += HEADER + length;
      this.recordEnd = this.base;
      if (type === CONTENT_HANDSHAKE) {
        this.hs = this.hs.length === 0 ? fragment : Buffer.concat([this.hs, fragment]);
        continue;
      }
      // RFC 8446 §5.1: handshake messages must not be interleaved with other record types.
      if (this.hs.length > 0) return this.fail('malformed', 'a handshake message interrupted by another record type');
      return { kind: 'record', contentType: type, end: this.recordEnd };
    }
  }

  private message(): TlsEvent | null {
    if (this.hs.length < 4) return null;
    const length = ((this.hs[1] ?? 0) << 16) | ((this.hs[2] ?? 0) << 8) | (this.hs[3] ?? 0);
    if (length > this.maxBytes) return this.fail('too_large', `handshake message of ${length} bytes`);
    if (this.hs.length < 4 + length) return null;
    const type = this.hs[0] ?? 0;
    const body = this.hs.subarray(4, 4 + length);
    this.hs = this.hs.subarray(4 + length);
    return { kind: 'message', type, body, end: this.recordEnd };
  }

  private moreOrTooLarge(): TlsEvent {
    return this.pushed >= this.maxBytes ? this.fail('too_large', `nothing decided within ${this.maxBytes} bytes`) : MORE;
  }

  private fail(error: 'not_tls' | 'malformed' | 'too_large', detail: string): TlsEvent {
    this.failed = Object.freeze({ kind: 'error', error, detail });
    return this.failed;
  }
}

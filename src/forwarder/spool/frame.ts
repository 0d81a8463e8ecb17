/**
 * On-disk framing of spool records and ack records.
 *
 * Record frame (little-endian), header HEADER_BYTES long, then stream name (UTF-8), then payload:
 *   0  magic      u32  RECORD_MAGIC
 *   4  headerCrc  u32  CRC-32 of bytes 8..40 (so a frame with a bad payload still tells us its
 *                      length and records count: the loss is counted exactly and we skip it whole)
 *   8  bodyCrc    u32  CRC-32 of stream bytes + payload
 *  12  payloadLen u32
 *  16  streamLen  u16
 *  18  format     u16  1: the payload is records joined by ','; 2: the payload is a sealed entry,
 *                      a whole upstream request body (gzip of a JSON array) sent as it is;
 *                      3: the payload is a deflate run of records joined by ',' (pool/gzip.ts
 *                      deflateRun: their CRC-32 u32 and length u32, then raw DEFLATE ending in a
 *                      sync flush; pool/stitch.ts joins runs into a batch's gzip)
 *  20  records    u32
 *  24  id         f64  (an integer; ids stay below 2^53)
 *  32  appendedAt f64  (ms since the epoch)
 *
 * CRC-32 rather than CRC-32C: every Node we support has it built in (zlib.crc32), libdeflate's
 * (util/crc32.ts, used when the deflate addon is built) runs at ~16 GB/s, and it detects the same
 * error patterns that matter here (any burst up to 32 bits, torn writes, flipped bytes).
 */
import { crc32 } from '../../util/crc32.js';

export const RECORD_MAGIC = 0x314c4350; // "PCL1" read as little-endian bytes
export const ACK_MAGIC = 0x314b4341; // "ACK1"
export const HEADER_BYTES = 40;
export const ACK_HEADER_BYTES = 12;
const FORMAT_RECORDS = 1;
const FORMAT_SEALED = 2;
const FORMAT_DEFLATED = 3;
/** A deflate run's CRC-32 and JSON length, in front of its DEFLATE data (pool/gzip.ts writes it and takes this size from here; the spool does not import the pool). */
export const RUN_PREFIX_BYTES = 8;

/** How an entry's payload holds its records (the frame's format field). */
export type PayloadKind = 'records' | 'sealed' | 'deflated';
const FORMATS: Record<PayloadKind, number> = { records: FORMAT_RECORDS, sealed: FORMAT_SEALED, deflated: FORMAT_DEFLATED };
const MAGIC_BYTES = Buffer.alloc(4);
MAGIC_BYTES.writeUInt32LE(RECORD_MAGIC, 0);
const ACK_MAGIC_BYTES = Buffer.alloc(4);
ACK_MAGIC_BYTES.writeUInt32LE(ACK_MAGIC, 0);

export interface FrameHeader {
  id: number;
  appendedAt: number;
  records: number;
  streamLen: number;
  payloadLen: number;
  bodyCrc: number;
  /** The payload is a whole request body, sent alone and unchanged (format 2). */
  sealed: boolean;
  /** The payload is a deflate run (format 3). */
  deflated: boolean;
}

export function frameBytes(streamLen: number, payloadLen: number): number {
  return HEADER_BYTES + streamLen + payloadLen;
}

/** Header + stream bytes of one frame; the payload is written after it without a copy (writev). */
export function encodeFrameHead(id: number, appendedAt: number, records: number, stream: Buffer, payload: Uint8Array, kind: PayloadKind = 'records'): Buffer {
  const head = Buffer.allocUnsafe(HEADER_BYTES + stream.length);
  head.writeUInt32LE(RECORD_MAGIC, 0);
  head.writeUInt32LE(crc32(payload, crc32(stream)), 8);
  head.writeUInt32LE(payload.length, 12);
  head.writeUInt16LE(stream.length, 16);
  head.writeUInt16LE(FORMATS[kind], 18);
  head.writeUInt32LE(records, 20);
  head.writeDoubleLE(id, 24);
  head.writeDoubleLE(appendedAt, 32);
  head.writeUInt32LE(crc32(head.subarray(8, HEADER_BYTES)), 4);
  stream.copy(head, HEADER_BYTES);
  return head;
}

/** The header at `pos` if its magic and header CRC check out (it may still extend past the end). */
export function readHeader(buf: Buffer, pos: number): FrameHeader | null {
  if (pos + HEADER_BYTES > buf.length) return null;
  if (buf.readUInt32LE(pos) !== RECORD_MAGIC) return null;
  if (crc32(buf.subarray(pos + 8, pos + HEADER_BYTES)) !== buf.readUInt32LE(pos + 4)) return null;
  const format = buf.readUInt16LE(pos + 18);
  if (format !== FORMAT_RECORDS && format !== FORMAT_SEALED && format !== FORMAT_DEFLATED) return null;
  // A deflate run starts with its CRC-32 and length: a shorter one cannot be a frame we wrote.
  if (format === FORMAT_DEFLATED && buf.readUInt32LE(pos + 12) < RUN_PREFIX_BYTES) return null;
  const id = buf.readDoubleLE(pos + 24);
  if (!Number.isSafeInteger(id) || id < 0) return null;
  return {
    id,
    appendedAt: buf.readDoubleLE(pos + 32),
    records: buf.readUInt32LE(pos + 20),
    streamLen: buf.readUInt16LE(pos + 16),
    payloadLen: buf.readUInt32LE(pos + 12),
    bodyCrc: buf.readUInt32LE(pos + 8),
    sealed: format === FORMAT_SEALED,
    deflated: format === FORMAT_DEFLATED,
  };
}

export function bodyOk(buf: Buffer, pos: number, h: FrameHeader): boolean {
  const start = pos + HEADER_BYTES;
  return crc32(buf.subarray(start, start + h.streamLen + h.payloadLen)) === h.bodyCrc;
}

export interface ScannedFrame {
  header: FrameHeader;
  stream: string;
  /** Offset of the payload in the segment file. */
  payloadOffset: number;
  /** Bytes of the records' JSON: the payload's length, or a deflate run's own count. */
  rawLength: number;
}

/** Bytes of JSON an entry's payload stands for (a deflate run says it in its prefix). */
export function payloadRawLength(payload: Uint8Array, deflated: boolean): number {
  if (!deflated) return payload.byteLength;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).readUInt32LE(4);
}

/** A damaged region: `records` is exact unless `headerless` (some bytes had no readable header). */
export interface DamagedRegion {
  offset: number;
  bytes: number;
  frames: number;
  records: number;
  headerless: boolean;
}

/** What a scan of one segment found; damaged regions are reported so the caller can count them. */
export interface SegmentScan {
  frames: ScannedFrame[];
  /** Damaged regions followed by a valid frame (skipped, left in place). */
  corrupt: DamagedRegion[];
  /** Damaged or cut bytes at the end with no valid frame after them (to be truncated). */
  tail: DamagedRegion | null;
  /** End of the last valid frame: where the file is cut when there is a tail. */
  validEnd: number;
}

/**
 * Walks a segment frame by frame. On a damaged frame it resynchronises on the next offset that
 * holds a magic number, a valid header CRC and a valid body CRC, so one bad record does not hide
 * the rest. Frames whose header is intact but whose body is bad are skipped whole and their
 * records counted; a run of bytes with no readable header counts as one damaged frame.
 */
export function scanSegment(buf: Buffer): SegmentScan {
  const frames: ScannedFrame[] = [];
  const corrupt: DamagedRegion[] = [];
  let bad: DamagedRegion | null = null;
  let inJunk = false;
  let pos = 0;
  let validEnd = 0;
  while (pos < buf.length) {
    const h = readHeader(buf, pos);
    if (h !== null) {
      const end = pos + frameBytes(h.streamLen, h.payloadLen);
      if (end <= buf.length && bodyOk(buf, pos, h)) {
        if (bad !== null) {
          bad.bytes = pos - bad.offset;
          corrupt.push(bad);
          bad = null;
        }
        const s = pos + HEADER_BYTES;
        const payloadOffset = s + h.streamLen;
        const rawLength = payloadRawLength(buf.subarray(payloadOffset, payloadOffset + h.payloadLen), h.deflated);
        frames.push({ header: h, stream: buf.toString('utf8', s, payloadOffset), payloadOffset, rawLength });
        pos = end;
        validEnd = end;
        inJunk = false;
        continue;
      }
      // Intact header, but the body is damaged or cut short: the header says what was lost.
      bad ??= { offset: pos, bytes: 0, frames: 0, records: 0, headerless: false };
      bad.frames++;
      bad.records += h.records;
      inJunk = false;
      if (end <= buf.length) {
        pos = end;
        continue;
      }
    } else {
      bad ??= { offset: pos, bytes: 0, frames: 0, records: 0, headerless: false };
      if (!inJunk) {
        bad.frames++;
        bad.headerless = true;
        inJunk = true;
      }
    }
    const next = buf.indexOf(MAGIC_BYTES, pos + 1);
    pos = next < 0 ? buf.length : next;
  }
  if (bad !== null) bad.bytes = buf.length - bad.offset;
  return { frames, corrupt, tail: bad, validEnd };
}

/** One ack record: the ids acknowledged in one group commit for one segment. */
export function encodeAck(ids: number[]): Buffer {
  const buf = Buffer.allocUnsafe(ACK_HEADER_BYTES + ids.length * 8);
  buf.writeUInt32LE(ACK_MAGIC, 0);
  buf.writeUInt32LE(ids.length, 4);
  for (let i = 0; i < ids.length; i++) buf.writeDoubleLE(ids[i] ?? 0, ACK_HEADER_BYTES + i * 8);
  buf.writeUInt32LE(crc32(buf.subarray(ACK_HEADER_BYTES), crc32(buf.subarray(4, 8))), 8);
  return buf;
}

/** Every id in the valid ack records of an ack file; damaged records are skipped (a lost ack means a replay, never a loss). */
export function scanAcks(buf: Buffer): { ids: number[]; damagedBytes: number; validEnd: number } {
  const ids: number[] = [];
  let pos = 0;
  let damagedBytes = 0;
  let validEnd = 0;
  while (pos < buf.length) {
    if (pos + ACK_HEADER_BYTES <= buf.length && buf.readUInt32LE(pos) === ACK_MAGIC) {
      const n = buf.readUInt32LE(pos + 4);
      const end = pos + ACK_HEADER_BYTES + n * 8;
      const crc = crc32(buf.subarray(pos + ACK_HEADER_BYTES, Math.min(end, buf.length)), crc32(buf.subarray(pos + 4, pos + 8)));
      if (end <= buf.length && crc === buf.readUInt32LE(pos + 8)) {
        for (let i = 0; i < n; i++) ids.push(buf.readDoubleLE(pos + ACK_HEADER_BYTES + i * 8));
        pos = end;
        validEnd = end;
        continue;
      }
    }
    const next = buf.indexOf(ACK_MAGIC_BYTES, pos + 1);
    const to = next < 0 ? buf.length : next;
    damagedBytes += to - pos;
    pos = to;
  }
  return { ids, damagedBytes, validEnd };
}

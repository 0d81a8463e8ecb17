/**
 * Upload body -> spool entries: gunzip (bounded), JSON.parse, array-of-objects check, Data
 * Collector -> Logs Ingestion mapping, split into entries of whole records. Pure and synchronous:
 * it runs inside a pool thread (worker.ts), and unit tests call it directly.
 */
import { gunzipSync } from 'node:zlib';
import { scanJson } from './json-scan.js';
import { gunzipMember } from './gzip.js';

export type DecodeMode = 'logsIngestion' | 'dataCollector' | 'translate';

export interface DecodeTask {
  readonly kind: 'decode';
  readonly body: Uint8Array;
  readonly gzip: boolean;
  /** Decoded (inflated) body limit: a gzip bomb stops here. */
  readonly maxDecodedBytes: number;
  /** Payload bytes per spool entry (records joined by ','); a record larger than this is refused. */
  readonly entryMaxBytes: number;
  readonly mode: DecodeMode;
  /** Data Collector `time-generated-field`; '' when absent. */
  readonly timeGeneratedField: string;
  /** ISO time of the upload: TimeGenerated for translated records that carry none. */
  readonly receivedAt: string;
  /**
   * Logs Ingestion uploads only: a gzip body that inflates to at least `minBytes` and, compressed
   * and not, at most `maxBytes` (one upstream request) is kept as it came, as one sealed entry,
   * and later sent upstream unchanged. null: never.
   */
  readonly seal?: { readonly minBytes: number; readonly maxBytes: number } | null;
}

export type DecodeError = 'badGzip' | 'tooLarge' | 'badJson' | 'notArray' | 'recordTooLarge';

export interface DecodedEntry {
  readonly records: number;
  readonly payload: Uint8Array;
  /** The payload is the client's whole gzip body (DecodeTask.seal). */
  readonly sealed?: boolean;
}

export type DecodeResult =
  | { readonly ok: true; readonly records: number; readonly decodedBytes: number; readonly entries: DecodedEntry[] }
  | { readonly ok: false; readonly error: DecodeError; readonly detail: string };

const encoder = new TextEncoder();

function fail(error: DecodeError, detail: string): DecodeResult {
  return { ok: false, error, detail };
}

/** DEFLATE's largest possible expansion (258 bytes from each 2-bit code, in theory 1032:1). */
const MAX_DEFLATE_RATIO = 1032;

/** Output chunks of at most this size: a trailer can lie, and a chunk is allocated whole. */
const MAX_INFLATE_CHUNK = 4 * 1024 * 1024;

export function inflate(body: Uint8Array, maxDecodedBytes: number, useNative = true): Uint8Array | DecodeResult {
  // The common case, one member of the size its trailer states, by libdeflate (about twice
  // zlib's speed); anything else, a bomb or a lie included, is zlib's to inflate or refuse.
  // (DEFLATE cannot inflate more than 1032:1: a larger claim is a lie, and is not allocated.)
  const claimed = gzipTrailerLength(body);
  if (claimed <= maxDecodedBytes && claimed <= body.byteLength * MAX_DEFLATE_RATIO) {
    const fast = gunzipMember(body, claimed, useNative);
    if (fast !== null) return fast;
  }
  try {
    // maxOutputLength makes zlib stop (and throw) once the output passes the limit: a bomb is
    // never inflated whole. One output chunk of the size the trailer states (+1, so zlib sees the
    // end within it) instead of 16 KiB ones joined at the end: a quarter less time for a 1 MB
    // upload (no join copy, one call). A lying trailer only changes the chunking.
    // (zlib's smallest chunk is 64 bytes.)
    const chunkSize = Math.max(64, Math.min(Math.max(claimed + 1, 16 * 1024), maxDecodedBytes + 1, MAX_INFLATE_CHUNK));
    return gunzipSync(body, { maxOutputLength: maxDecodedBytes, chunkSize });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) return fail('tooLarge', `decompressed body over ${maxDecodedBytes} bytes`);
    return fail('badGzip', (err as Error).message);
  }
}

export function decode(task: DecodeTask): DecodeResult {
  let raw = task.body;
  if (task.gzip) {
    const out = inflate(raw, task.maxDecodedBytes);
    if (!(out instanceof Uint8Array)) return out;
    raw = out;
  } else if (raw.byteLength > task.maxDecodedBytes) {
    return fail('tooLarge', `body over ${task.maxDecodedBytes} bytes`);
  }
  if (task.mode !== 'translate' && raw.byteLength - 2 <= task.entryMaxBytes) {
    // The common case, an upload that fits one entry with its records kept as they are: the
    // entry is the client's own bytes between the outer brackets, once proved to be an array of
    // objects. Validated without building a value (json-scan.ts): no parse, stringify or encode,
    // and upstream gets each record byte for byte as it was sent.
    const shape = scanJson(raw);
    if (!shape.ok) return fail('badJson', `the body is not valid JSON (byte ${shape.at})`);
    if (shape.top === 'array') {
      if (!shape.allObjects) return fail('notArray', 'every item of the array must be a JSON object');
      const inner = arrayInterior(raw);
      if (shape.items === 0) return { ok: true, records: 0, decodedBytes: raw.byteLength, entries: [] };
      if (inner !== null) {
        const entries: DecodedEntry[] = sealable(task, raw)
          ? // Already one upstream request's worth, compressed by the client: spooled and sent as
            // it came. Neither a re-compression here nor 10x the bytes through the spool's fdatasync.
            [{ records: shape.items, payload: task.body, sealed: true }]
          : [{ records: shape.items, payload: inner }];
        return { ok: true, records: shape.items, decodedBytes: raw.byteLength, entries };
      }
    } else if (task.mode === 'logsIngestion') {
      return fail('notArray', 'the body must be a JSON array');
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch (err) {
    return fail('badJson', (err as Error).message);
  }
  // The Data Collector API also takes a single object.
  if (task.mode !== 'logsIngestion' && parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) parsed = [parsed];
  if (!Array.isArray(parsed)) return fail('notArray', 'the body must be a JSON array');
  const records = parsed as unknown[];
  const entries: DecodedEntry[] = [];
  let parts: string[] = [];
  let partBytes = 0;
  const flush = (): void => {
    if (parts.length === 0) return;
    entries.push({ records: parts.length, payload: encoder.encode(parts.join(',')) });
    parts = [];
    partBytes = 0;
  };
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return fail('notArray', `item ${i} is not a JSON object`);
    const mapped = task.mode === 'translate' ? translate(rec as Record<string, unknown>, task.timeGeneratedField, task.receivedAt) : rec;
    const text = JSON.stringify(mapped);
    const bytes = Buffer.byteLength(text);
    if (bytes > task.entryMaxBytes) return fail('recordTooLarge', `record ${i} is ${bytes} bytes; at most ${task.entryMaxBytes} fit in one upstream batch`);
    // +1 for the ',' that joins it to the previous record.
    if (parts.length > 0 && partBytes + 1 + bytes > task.entryMaxBytes) flush();
    partBytes += parts.length > 0 ? 1 + bytes : bytes;
    parts.push(text);
  }
  flush();
  return { ok: true, records: records.length, decodedBytes: raw.byteLength, entries };
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Whether an inflated Logs Ingestion body may be kept as its gzip: within DecodeTask.seal's
 * sizes, and one gzip member (its trailer's ISIZE is the whole inflated length), so the upstream
 * inflates exactly the bytes validated here.
 */
function sealable(task: DecodeTask, raw: Uint8Array): boolean {
  const seal = task.seal ?? null;
  if (seal === null || !task.gzip || task.mode !== 'logsIngestion') return false;
  // What likelySealed() judged from the trailer, now proved: the trailer states the whole
  // inflated length (so raw is within seal.maxBytes, and ISIZE's modulo 2^32 does not apply).
  return likelySealed(task.body, seal) && gzipTrailerLength(task.body) === raw.byteLength;
}

/**
 * Whether a gzip Logs Ingestion body is likely to be sealed, before it is inflated: its size and
 * its trailer's claimed inflated size are within `seal`. A claim: decode() has the last word.
 */
export function likelySealed(body: Uint8Array, seal: { readonly minBytes: number; readonly maxBytes: number }): boolean {
  if (body.byteLength < 18 || body.byteLength > seal.maxBytes) return false;
  const claimed = gzipTrailerLength(body);
  return claimed >= seal.minBytes && claimed <= seal.maxBytes;
}

/**
 * The check a sealed entry read back from the spool gets after a restart (Spool.verifyHeld): one
 * gzip member of a JSON array of objects, at most one upstream request compressed and not.
 */
export function sealedCheckTask(payload: Uint8Array, maxBytes: number): DecodeTask {
  return {
    kind: 'decode',
    body: payload,
    gzip: true,
    maxDecodedBytes: maxBytes,
    entryMaxBytes: maxBytes,
    mode: 'logsIngestion',
    timeGeneratedField: '',
    receivedAt: '',
    seal: { minBytes: 0, maxBytes },
  };
}

/** The record count of a decode that kept the body as one sealed entry, else null. */
export function sealedRecords(r: DecodeResult): number | null {
  return r.ok && r.entries.length === 1 && r.entries[0]?.sealed === true ? r.records : null;
}

/**
 * The inflated length a gzip body's trailer states (ISIZE, modulo 2^32): a sealed entry's JSON
 * size, and a decode's weight before inflating. A claim until inflated (a bomb can lie).
 */
export function gzipTrailerLength(gz: Uint8Array): number {
  const n = gz.byteLength;
  return ((gz[n - 4] ?? 0) | ((gz[n - 3] ?? 0) << 8) | ((gz[n - 2] ?? 0) << 16)) + (gz[n - 1] ?? 0) * 2 ** 24;
}

/**
 * The bytes between a JSON array's outer brackets (whitespace around them skipped), for a body
 * JSON.parse already accepted as an array; null if the body is not shaped that way (a BOM, say).
 */
function arrayInterior(raw: Uint8Array): Uint8Array | null {
  let start = 0;
  let end = raw.byteLength - 1;
  while (start <= end && WS.has(raw[start] ?? 0)) start++;
  while (end >= start && WS.has(raw[end] ?? 0)) end--;
  if (raw[start] !== 0x5b || raw[end] !== 0x5d) return null;
  return raw.subarray(start + 1, end);
}

/**
 * Data Collector record -> Logs Ingestion record. The Data Collector API stamps TimeGenerated
 * from `time-generated-field` (or the time it received the record); the Logs Ingestion API needs
 * the column itself, so it is set here. The original field stays, as the legacy table had it too.
 */
export function translate(rec: Record<string, unknown>, timeGeneratedField: string, receivedAt: string): Record<string, unknown> {
  if (timeGeneratedField !== '') {
    const v = rec[timeGeneratedField];
    if (typeof v === 'string' && v !== '' && !Number.isNaN(Date.parse(v))) return { ...rec, TimeGenerated: v };
  }
  if (typeof rec.TimeGenerated === 'string') return rec;
  return { ...rec, TimeGenerated: receivedAt };
}

/**
 * Upload body -> spool entries: gunzip (bounded), JSON.parse, array-of-objects check, Data
 * Collector -> Logs Ingestion mapping, split into entries of whole records. Pure and synchronous:
 * it runs inside a pool thread (worker.ts), and unit tests call it directly.
 */
import { gunzipSync } from 'node:zlib';

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
}

export type DecodeError = 'badGzip' | 'tooLarge' | 'badJson' | 'notArray' | 'recordTooLarge';

export interface DecodedEntry {
  readonly records: number;
  readonly payload: Uint8Array;
}

export type DecodeResult =
  | { readonly ok: true; readonly records: number; readonly decodedBytes: number; readonly entries: DecodedEntry[] }
  | { readonly ok: false; readonly error: DecodeError; readonly detail: string };

const encoder = new TextEncoder();

function fail(error: DecodeError, detail: string): DecodeResult {
  return { ok: false, error, detail };
}

export function inflate(body: Uint8Array, maxDecodedBytes: number): Uint8Array | DecodeResult {
  try {
    // maxOutputLength makes zlib stop (and throw) once the output passes the limit: a bomb is
    // never inflated whole.
    return gunzipSync(body, { maxOutputLength: maxDecodedBytes });
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
  if (task.mode !== 'translate' && raw.byteLength - 2 <= task.entryMaxBytes) {
    // The common case (an upload that fits one entry, records kept as they are): the entry is the
    // client's own bytes between the outer brackets, already proved to be an array of objects.
    // No stringify and no re-encode, and upstream gets each record byte for byte as it was sent.
    const inner = arrayInterior(raw);
    for (let i = 0; i < records.length; i++) {
      const rec = records[i];
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) return fail('notArray', `item ${i} is not a JSON object`);
    }
    const entries = records.length > 0 && inner ? [{ records: records.length, payload: inner }] : [];
    if (records.length === 0 || inner) return { ok: true, records: records.length, decodedBytes: raw.byteLength, entries };
  }
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

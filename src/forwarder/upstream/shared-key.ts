/**
 * HTTP Data Collector API "SharedKey" authorization: signing for the sender (re-signed batches)
 * and verification for the ingest side (legacy senders sign with the workspace key).
 *
 * String to sign (documented by Microsoft):
 *   "POST\n" + <body byte length> + "\n" + <Content-Type> + "\n" + "x-ms-date:" + <RFC 1123 date> + "\n" + "/api/logs"
 * Signature = base64(HMAC-SHA256(base64decode(workspaceKey), stringToSign)),
 * header `Authorization: SharedKey <workspaceId>:<signature>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const DATA_COLLECTOR_RESOURCE = '/api/logs';
export const DATA_COLLECTOR_CONTENT_TYPE = 'application/json';
/** Default bound on |now - x-ms-date| accepted by verifySharedKey. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export interface SignInput {
  workspaceId: string;
  /** The workspace primary or secondary key, base64 as shown in the portal. */
  sharedKey: string | Buffer;
  contentLength: number;
  /** RFC 1123 date, the value of the x-ms-date header. */
  date: string;
  contentType?: string;
  method?: string;
  resource?: string;
}

export function stringToSign(input: Omit<SignInput, 'workspaceId' | 'sharedKey'>): string {
  const method = input.method ?? 'POST';
  const contentType = input.contentType ?? DATA_COLLECTOR_CONTENT_TYPE;
  const resource = input.resource ?? DATA_COLLECTOR_RESOURCE;
  return `${method}\n${input.contentLength}\n${contentType}\nx-ms-date:${input.date}\n${resource}`;
}

function keyBytes(sharedKey: string | Buffer): Buffer {
  return typeof sharedKey === 'string' ? Buffer.from(sharedKey.trim(), 'base64') : sharedKey;
}

export function sharedKeySignature(input: SignInput): string {
  return createHmac('sha256', keyBytes(input.sharedKey)).update(stringToSign(input), 'utf8').digest('base64');
}

/** The Authorization header value: `SharedKey <workspaceId>:<signature>`. */
export function sharedKeyAuthorization(input: SignInput): string {
  return `SharedKey ${input.workspaceId}:${sharedKeySignature(input)}`;
}

/** Headers for one signed Data Collector post of `body` (date defaults to now). */
export function signDataCollectorRequest(opts: {
  workspaceId: string;
  sharedKey: string | Buffer;
  body: Uint8Array;
  logType: string;
  timeGeneratedField?: string;
  now?: Date;
}): Record<string, string> {
  const date = (opts.now ?? new Date()).toUTCString();
  const headers: Record<string, string> = {
    'content-type': DATA_COLLECTOR_CONTENT_TYPE,
    'log-type': opts.logType,
    'x-ms-date': date,
    authorization: sharedKeyAuthorization({
      workspaceId: opts.workspaceId,
      sharedKey: opts.sharedKey,
      contentLength: opts.body.byteLength,
      date,
    }),
  };
  if (opts.timeGeneratedField !== undefined) headers['time-generated-field'] = opts.timeGeneratedField;
  return headers;
}

export type SharedKeyVerdict =
  { ok: true; workspaceId: string } | { ok: false; reason: 'missing' | 'scheme' | 'malformed' | 'workspace' | 'date' | 'skew' | 'signature' };

export interface VerifyInput {
  authorization: string | undefined;
  date: string | undefined;
  contentType: string | undefined;
  contentLength: number;
  /** Workspace id -> keys (primary and secondary both valid). */
  keysFor: (workspaceId: string) => ReadonlyArray<string | Buffer> | undefined;
  now?: number;
  maxClockSkewMs?: number;
}

/** Verifies a SharedKey Authorization header; constant-time signature compare. */
export function verifySharedKey(input: VerifyInput): SharedKeyVerdict {
  const auth = input.authorization?.trim();
  if (auth === undefined || auth === '') return { ok: false, reason: 'missing' };
  const space = auth.indexOf(' ');
  if (space < 0 || auth.slice(0, space) !== 'SharedKey') return { ok: false, reason: 'scheme' };
  const cred = auth.slice(space + 1).trim();
  const colon = cred.indexOf(':');
  if (colon <= 0 || colon === cred.length - 1) return { ok: false, reason: 'malformed' };
  const workspaceId = cred.slice(0, colon);
  const given = Buffer.from(cred.slice(colon + 1), 'base64');
  const keys = input.keysFor(workspaceId);
  if (keys === undefined || keys.length === 0) return { ok: false, reason: 'workspace' };
  if (input.date === undefined) return { ok: false, reason: 'date' };
  const when = Date.parse(input.date);
  if (Number.isNaN(when)) return { ok: false, reason: 'date' };
  const skew = Math.abs((input.now ?? Date.now()) - when);
  if (skew > (input.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS)) return { ok: false, reason: 'skew' };
  for (const key of keys) {
    const expected = Buffer.from(
      sharedKeySignature({
        workspaceId,
        sharedKey: key,
        contentLength: input.contentLength,
        date: input.date,
        contentType: input.contentType ?? '',
      }),
      'base64',
    );
    if (expected.length === given.length && timingSafeEqual(expected, given)) return { ok: true, workspaceId };
  }
  return { ok: false, reason: 'signature' };
}

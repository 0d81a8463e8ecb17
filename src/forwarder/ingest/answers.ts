/**
 * The ingest's answers, one table per API. Code, reason (metrics label) and event come from the
 * catalogue (src/errors/catalogue.ts, ForwarderErrors); what each API adds is its status, the error
 * code the real Azure service puts in its body for the same thing (clients that match on it keep
 * working through the gateway) and its wording.
 */
import { ForwarderErrors as F, type ForwarderEntry } from '../../errors/catalogue.js';
import type { EventCode } from '../../log/events.js';

export interface ForwarderRefusal {
  readonly code: string;
  readonly status: number;
  /** Metric label (snake_case, closed set). */
  readonly reason: string;
  readonly event: EventCode;
  readonly message: string;
  /** The Azure API's own error code for the body. */
  readonly api: string;
  /** 429 and 503 carry Retry-After. */
  readonly retryAfter?: boolean;
}

function r(entry: ForwarderEntry, status: number, api: string, message: string = entry.message): ForwarderRefusal {
  const base = { code: entry.code, status, reason: entry.reason, event: entry.event, api, message };
  return status === 429 || status === 503 ? { ...base, retryAfter: true } : base;
}

/** Logs Ingestion API answers (body `{"error":{"code","message"}}`). */
export const LI = {
  badApiVersion: r(F.FWD_API_VERSION, 400, 'InvalidApiVersion', 'api-version must be 2023-01-01 (or another supported version)'),
  badJson: r(F.FWD_BAD_JSON, 400, 'InvalidJson'),
  notArray: r(F.FWD_NOT_ARRAY, 400, 'InvalidPayload'),
  badGzip: r(F.FWD_BAD_GZIP, 400, 'InvalidContentEncoding'),
  badEncoding: r(F.FWD_ENCODING, 415, 'UnsupportedContentEncoding'),
  badContentType: r(F.FWD_CONTENT_TYPE, 415, 'UnsupportedMediaType'),
  tooLarge: r(F.FWD_TOO_LARGE, 413, 'ContentLengthLimitExceeded', 'Maximum allowed content length: 1048576 bytes'),
  recordTooLarge: r(F.FWD_RECORD_TOO_LARGE, 413, 'ContentLengthLimitExceeded'),
  unauthorized: r(F.FWD_UNAUTHORIZED, 401, 'InvalidToken', 'missing or invalid credentials'),
  forbidden: r(F.FWD_FORBIDDEN, 403, 'Forbidden', 'this identity may not send to this data collection rule and stream'),
  unknownRoute: r(F.FWD_UNKNOWN_ROUTE, 404, 'NotFound', 'no such data collection rule and stream on this gateway'),
  timeout: r(F.FWD_BODY_TIMEOUT, 408, 'RequestTimeout'),
  spoolFull: r(F.SPOOL_FULL, 429, 'TooManyRequests', 'the gateway is full; retry later'),
  memory: r(F.FWD_MEMORY, 429, 'TooManyRequests', 'the gateway is short of memory; retry later'),
  spoolIo: r(F.SPOOL_IO, 503, 'ServiceUnavailable', 'the gateway cannot store data right now'),
  draining: r(F.FWD_DRAINING, 503, 'ServiceUnavailable'),
  internal: r(F.FWD_INTERNAL, 500, 'InternalServerError'),
} as const;

/** HTTP Data Collector API answers (body `{"Error","Message"}`; its documented codes). */
export const DC = {
  missingApiVersion: r(F.FWD_API_VERSION, 400, 'MissingApiVersion', 'The API version wasn\u2019t specified.'),
  badApiVersion: r(F.FWD_API_VERSION, 400, 'InvalidApiVersion', 'The API version that you specified wasn\u2019t recognized by the service.'),
  missingLogType: r(F.FWD_LOG_TYPE, 400, 'MissingLogType', 'The required value log type wasn\u2019t specified.'),
  badLogType: r(F.FWD_LOG_TYPE, 400, 'InvalidLogType', 'The log type specified contained special characters or numerics.'),
  missingContentType: r(F.FWD_CONTENT_TYPE, 400, 'MissingContentType', 'The content type wasn\u2019t specified.'),
  badContentType: r(F.FWD_CONTENT_TYPE, 400, 'UnsupportedContentType', 'The content type wasn\u2019t set to application/json.'),
  badDate: r(F.FWD_DATE, 400, 'InvalidTimestamp', 'The x-ms-date header is missing, malformed, or too far from the gateway\u2019s clock.'),
  badData: r(
    F.FWD_BAD_JSON,
    400,
    'InvalidDataFormat',
    'Invalid JSON was submitted. The response body might contain more information about how to resolve the error.',
  ),
  badGzip: r(F.FWD_BAD_GZIP, 400, 'InvalidDataFormat'),
  tooLarge: r(F.FWD_TOO_LARGE, 413, 'RequestEntityTooLarge', 'The request exceeds the size limit of 30 MB.'),
  recordTooLarge: r(F.FWD_RECORD_TOO_LARGE, 413, 'RequestEntityTooLarge'),
  unauthorized: r(
    F.FWD_UNAUTHORIZED,
    403,
    'InvalidAuthorization',
    'The service failed to authenticate the request. Verify that the workspace ID and connection key are valid.',
  ),
  forbidden: r(F.FWD_FORBIDDEN, 403, 'InvalidAuthorization', 'This identity may not send this log type to this workspace.'),
  unknownRoute: r(F.FWD_UNKNOWN_ROUTE, 404, 'NotFound', 'no route for this workspace and log type on this gateway'),
  timeout: r(F.FWD_BODY_TIMEOUT, 408, 'RequestTimeout'),
  spoolFull: r(F.SPOOL_FULL, 503, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry later.'),
  memory: r(F.FWD_MEMORY, 503, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry later.'),
  spoolIo: r(F.SPOOL_IO, 503, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry later.'),
  draining: r(F.FWD_DRAINING, 503, 'ServiceUnavailable', 'The gateway is shutting down. Retry later.'),
  internal: r(F.FWD_INTERNAL, 500, 'InternalServerError', 'The service encountered an internal error. Retry the request.'),
} as const;

export type LiRefusalName = keyof typeof LI;
export type DcRefusalName = keyof typeof DC;
/** Names both tables share: what the pool and the spool report, mapped per API by the ingest. */
export type CommonRefusalName = LiRefusalName & DcRefusalName;

/** Every reason label the refused counter can carry (for pre-declaring series). */
export const REFUSAL_REASONS: readonly string[] = [...new Set([...Object.values(LI), ...Object.values(DC)].map((x) => x.reason))];

export function liBody(x: ForwarderRefusal, message = x.message): string {
  return JSON.stringify({ error: { code: x.api, message } });
}

export function dcBody(x: ForwarderRefusal, message = x.message): string {
  return JSON.stringify({ Error: x.api, Message: message });
}

/**
 * The ingest's refusals (one table per API), in the shape of the central catalogue ({code, status, reason, event,
 * message}) so the lead can fold them in. `api` is the error code the real Azure service puts in
 * its body for the same thing, so clients that match on it keep working through the gateway.
 */
import { Events, type EventCode } from '../../log/events.js';

export interface ForwarderRefusal {
  readonly code: string;
  readonly status: number;
  /** Metric label (snake_case, closed set). */
  readonly reason: string;
  readonly event: EventCode;
  readonly message: string;
  /** The Azure API's own error code for the body. */
  readonly api: string;
  /** Seconds, for 429/503. */
  readonly retryAfter?: boolean;
}

function r(code: string, status: number, reason: string, event: EventCode, api: string, message: string, retryAfter = false): ForwarderRefusal {
  return retryAfter ? { code, status, reason, event, api, message, retryAfter } : { code, status, reason, event, api, message };
}

/** Logs Ingestion API answers (body `{"error":{"code","message"}}`). */
export const LI = {
  badApiVersion: r(
    'PCL_ERR_FWD_API_VERSION',
    400,
    'bad_api_version',
    Events.FWD_BAD_UPLOAD,
    'InvalidApiVersion',
    'api-version must be 2023-01-01 (or another supported version)',
  ),
  badJson: r('PCL_ERR_FWD_BAD_JSON', 400, 'bad_json', Events.FWD_BAD_UPLOAD, 'InvalidJson', 'the body is not valid JSON'),
  notArray: r('PCL_ERR_FWD_NOT_ARRAY', 400, 'not_array', Events.FWD_BAD_UPLOAD, 'InvalidPayload', 'the body must be a JSON array of objects'),
  badGzip: r('PCL_ERR_FWD_BAD_GZIP', 400, 'bad_gzip', Events.FWD_BAD_UPLOAD, 'InvalidContentEncoding', 'the gzip body could not be decompressed'),
  badEncoding: r(
    'PCL_ERR_FWD_ENCODING',
    415,
    'unsupported_encoding',
    Events.FWD_BAD_UPLOAD,
    'UnsupportedContentEncoding',
    'Content-Encoding must be gzip or absent',
  ),
  badContentType: r(
    'PCL_ERR_FWD_CONTENT_TYPE',
    415,
    'unsupported_media_type',
    Events.FWD_BAD_UPLOAD,
    'UnsupportedMediaType',
    'Content-Type must be application/json',
  ),
  tooLarge: r('PCL_ERR_FWD_TOO_LARGE', 413, 'too_large', Events.FWD_BAD_UPLOAD, 'ContentLengthLimitExceeded', 'Maximum allowed content length: 1048576 bytes'),
  recordTooLarge: r(
    'PCL_ERR_FWD_RECORD_TOO_LARGE',
    413,
    'record_too_large',
    Events.FWD_BAD_UPLOAD,
    'ContentLengthLimitExceeded',
    'a single record is larger than one upstream batch',
  ),
  unauthorized: r('PCL_ERR_FWD_UNAUTHORIZED', 401, 'unauthorized', Events.FWD_AUTH_FAILED, 'InvalidToken', 'missing or invalid credentials'),
  forbidden: r(
    'PCL_ERR_FWD_FORBIDDEN',
    403,
    'route_forbidden',
    Events.FWD_ROUTE_FORBIDDEN,
    'Forbidden',
    'this identity may not send to this data collection rule and stream',
  ),
  unknownRoute: r(
    'PCL_ERR_FWD_UNKNOWN_ROUTE',
    404,
    'unknown_route',
    Events.FWD_ROUTE_FORBIDDEN,
    'NotFound',
    'no such data collection rule and stream on this gateway',
  ),
  timeout: r('PCL_ERR_FWD_BODY_TIMEOUT', 408, 'body_timeout', Events.FWD_UPLOAD_TIMEOUT, 'RequestTimeout', 'the upload stalled'),
  spoolFull: r('PCL_ERR_SPOOL_FULL', 429, 'spool_full', Events.FWD_OVERLOAD, 'TooManyRequests', 'the gateway is full; retry later', true),
  memory: r('PCL_ERR_FWD_MEMORY', 429, 'memory', Events.FWD_OVERLOAD, 'TooManyRequests', 'the gateway is short of memory; retry later', true),
  spoolIo: r('PCL_ERR_SPOOL_IO', 503, 'spool_io', Events.FWD_SPOOL_ERROR, 'ServiceUnavailable', 'the gateway cannot store data right now', true),
  draining: r('PCL_ERR_DRAINING', 503, 'draining', Events.FWD_LIFECYCLE, 'ServiceUnavailable', 'the gateway is shutting down', true),
  internal: r('PCL_ERR_FWD_INTERNAL', 500, 'internal', Events.FWD_POOL_ERROR, 'InternalServerError', 'internal error'),
} as const;

/** HTTP Data Collector API answers (body `{"Error","Message"}`; its documented codes). */
export const DC = {
  missingApiVersion: r('PCL_ERR_FWD_API_VERSION', 400, 'bad_api_version', Events.FWD_BAD_UPLOAD, 'MissingApiVersion', 'The API version wasn\u2019t specified.'),
  badApiVersion: r(
    'PCL_ERR_FWD_API_VERSION',
    400,
    'bad_api_version',
    Events.FWD_BAD_UPLOAD,
    'InvalidApiVersion',
    'The API version that you specified wasn\u2019t recognized by the service.',
  ),
  missingLogType: r('PCL_ERR_FWD_LOG_TYPE', 400, 'bad_log_type', Events.FWD_BAD_UPLOAD, 'MissingLogType', 'The required value log type wasn\u2019t specified.'),
  badLogType: r(
    'PCL_ERR_FWD_LOG_TYPE',
    400,
    'bad_log_type',
    Events.FWD_BAD_UPLOAD,
    'InvalidLogType',
    'The log type specified contained special characters or numerics.',
  ),
  missingContentType: r(
    'PCL_ERR_FWD_CONTENT_TYPE',
    400,
    'unsupported_media_type',
    Events.FWD_BAD_UPLOAD,
    'MissingContentType',
    'The content type wasn\u2019t specified.',
  ),
  badContentType: r(
    'PCL_ERR_FWD_CONTENT_TYPE',
    400,
    'unsupported_media_type',
    Events.FWD_BAD_UPLOAD,
    'UnsupportedContentType',
    'The content type wasn\u2019t set to application/json.',
  ),
  badDate: r(
    'PCL_ERR_FWD_DATE',
    400,
    'bad_date',
    Events.FWD_AUTH_FAILED,
    'InvalidTimestamp',
    'The x-ms-date header is missing, malformed, or too far from the gateway\u2019s clock.',
  ),
  badData: r(
    'PCL_ERR_FWD_BAD_JSON',
    400,
    'bad_json',
    Events.FWD_BAD_UPLOAD,
    'InvalidDataFormat',
    'Invalid JSON was submitted. The response body might contain more information about how to resolve the error.',
  ),
  badGzip: r('PCL_ERR_FWD_BAD_GZIP', 400, 'bad_gzip', Events.FWD_BAD_UPLOAD, 'InvalidDataFormat', 'the gzip body could not be decompressed'),
  tooLarge: r('PCL_ERR_FWD_TOO_LARGE', 413, 'too_large', Events.FWD_BAD_UPLOAD, 'RequestEntityTooLarge', 'The request exceeds the size limit of 30 MB.'),
  recordTooLarge: r(
    'PCL_ERR_FWD_RECORD_TOO_LARGE',
    413,
    'record_too_large',
    Events.FWD_BAD_UPLOAD,
    'RequestEntityTooLarge',
    'a single record is larger than one upstream batch',
  ),
  unauthorized: r(
    'PCL_ERR_FWD_UNAUTHORIZED',
    403,
    'unauthorized',
    Events.FWD_AUTH_FAILED,
    'InvalidAuthorization',
    'The service failed to authenticate the request. Verify that the workspace ID and connection key are valid.',
  ),
  forbidden: r(
    'PCL_ERR_FWD_FORBIDDEN',
    403,
    'route_forbidden',
    Events.FWD_ROUTE_FORBIDDEN,
    'InvalidAuthorization',
    'This identity may not send this log type to this workspace.',
  ),
  unknownRoute: r(
    'PCL_ERR_FWD_UNKNOWN_ROUTE',
    404,
    'unknown_route',
    Events.FWD_ROUTE_FORBIDDEN,
    'NotFound',
    'no route for this workspace and log type on this gateway',
  ),
  timeout: r('PCL_ERR_FWD_BODY_TIMEOUT', 408, 'body_timeout', Events.FWD_UPLOAD_TIMEOUT, 'RequestTimeout', 'the upload stalled'),
  spoolFull: r(
    'PCL_ERR_SPOOL_FULL',
    503,
    'spool_full',
    Events.FWD_OVERLOAD,
    'ServiceUnavailable',
    'The service is temporarily unavailable. Retry later.',
    true,
  ),
  memory: r('PCL_ERR_FWD_MEMORY', 503, 'memory', Events.FWD_OVERLOAD, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry later.', true),
  spoolIo: r('PCL_ERR_SPOOL_IO', 503, 'spool_io', Events.FWD_SPOOL_ERROR, 'ServiceUnavailable', 'The service is temporarily unavailable. Retry later.', true),
  draining: r('PCL_ERR_DRAINING', 503, 'draining', Events.FWD_LIFECYCLE, 'ServiceUnavailable', 'The gateway is shutting down. Retry later.', true),
  internal: r(
    'PCL_ERR_FWD_INTERNAL',
    500,
    'internal',
    Events.FWD_POOL_ERROR,
    'InternalServerError',
    'The service encountered an internal error. Retry the request.',
  ),
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

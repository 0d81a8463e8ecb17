/**
 * The one catalogue of refusals and errors (like fastify's lib/errors.js): each entry is declared
 * once, on one line, and everything else derives from it: the `Reason` type (the metrics label),
 * the refusals the proxy answers with, the metrics' reason sets, and docs/errors.md
 * (`npm run docs:errors`; a unit test fails when the file is out of date).
 *
 * Adding a code is adding a line here. Kinds:
 * - rejection: refused by policy, limits or protocol checks (verdict deny, portcullis_rejections_total);
 * - error: allowed, but the destination could not be reached (verdict error, portcullis_errors_total);
 * - outcome: how an accepted request ended badly; nothing is answered, the request's own access
 *   record (event 103 tunnel / 109 HTTP) carries the code.
 * Status 0 means no answer is sent (the connection is closed).
 */
import { Events, type EventCode } from '../log/events.js';

interface EntryBase<R extends string> {
  /** Stable code, PCL_ERR_*: operators and tests match on it. */
  readonly code: string;
  /** The HTTP status the client sees; 0 = none (the connection is closed). */
  readonly status: number;
  /** Bounded, snake_case: the `reason` metrics label and access-record field. */
  readonly reason: R;
  /** What the client reads (JSON body) and the log line says; may get a detail appended. */
  readonly message: string;
  /** Seconds for a Retry-After header. */
  readonly retryAfterS?: number;
}

/** Answered with `status` and logged with `event`. */
export interface AnsweredEntry<R extends string = string> extends EntryBase<R> {
  readonly kind: 'rejection' | 'error';
  readonly event: EventCode;
}

/** Recorded on the request's own access record; the record keeps its event. */
export interface OutcomeEntry<R extends string = string> extends EntryBase<R> {
  readonly kind: 'outcome';
  readonly event: null;
}

export type CatalogueEntry<R extends string = string> = AnsweredEntry<R> | OutcomeEntry<R>;

function answered<const R extends string>(
  kind: AnsweredEntry['kind'],
  code: string,
  status: number,
  reason: R,
  event: EventCode,
  message: string,
  retryAfterS?: number,
): AnsweredEntry<R> {
  const e: AnsweredEntry<R> =
    retryAfterS === undefined ? { kind, code, status, reason, event, message } : { kind, code, status, reason, event, message, retryAfterS };
  return Object.freeze(e);
}

/** Refused by policy, a limit or a protocol check. */
function rejection<const R extends string>(code: string, status: number, reason: R, event: EventCode, message: string, retryAfterS?: number): AnsweredEntry<R> {
  return answered('rejection', code, status, reason, event, message, retryAfterS);
}

/** Allowed, but failed towards the destination (or inside the gateway). */
function failure<const R extends string>(code: string, status: number, reason: R, event: EventCode, message: string): AnsweredEntry<R> {
  return answered('error', code, status, reason, event, message);
}

function outcome<const R extends string>(code: string, status: number, reason: R, message: string): OutcomeEntry<R> {
  return Object.freeze({ kind: 'outcome', code, status, reason, event: null, message });
}

const E = Events;

export const Errors = {
  // Policy (see src/policy): who may go where.
  CLIENT_FORBIDDEN: rejection('PCL_ERR_CLIENT_FORBIDDEN', 403, 'client_denied', E.CLIENT_FORBIDDEN, 'client address not allowed'),
  TARGET_FORBIDDEN: rejection('PCL_ERR_TARGET_FORBIDDEN', 403, 'host_not_allowed', E.TARGET_FORBIDDEN, 'destination host not allowed'),
  PORT_FORBIDDEN: rejection('PCL_ERR_PORT_FORBIDDEN', 403, 'port_not_allowed', E.TARGET_FORBIDDEN, 'destination port not allowed'),
  IP_LITERAL_FORBIDDEN: rejection('PCL_ERR_IP_LITERAL_FORBIDDEN', 403, 'ip_literal', E.TARGET_FORBIDDEN, 'IP-literal destinations are not allowed'),
  PRIVATE_ADDRESS: rejection('PCL_ERR_PRIVATE_ADDRESS', 403, 'private_address', E.TARGET_FORBIDDEN, 'destination resolves to a non-public address'),
  // Client identity (docs/client-identity.md): proxy Basic authentication and client certificates.
  PROXY_AUTH_REQUIRED: rejection('PCL_ERR_PROXY_AUTH_REQUIRED', 407, 'proxy_auth_required', E.PROXY_AUTH_FAILED, 'proxy authentication required (Basic)'),
  PROXY_AUTH_FAILED: rejection('PCL_ERR_PROXY_AUTH_FAILED', 407, 'proxy_auth_failed', E.PROXY_AUTH_FAILED, 'wrong proxy user name or password'),
  PROXY_AUTH_RATE_LIMITED: rejection(
    'PCL_ERR_PROXY_AUTH_RATE_LIMITED',
    429,
    'proxy_auth_rate_limited',
    E.PROXY_AUTH_RATE_LIMITED,
    'too many failed proxy authentications from this address (proxy.auth.maxFailuresPerMinute)',
    60,
  ),
  CLIENT_CERT_REQUIRED: rejection(
    'PCL_ERR_CLIENT_CERT_REQUIRED',
    403,
    'client_cert_required',
    E.TARGET_FORBIDDEN,
    'this listener requires a client certificate (proxy.tls.requireClientCert)',
  ),
  CLIENT_CERT_UNTRUSTED: rejection(
    'PCL_ERR_CLIENT_CERT_UNTRUSTED',
    403,
    'client_cert_untrusted',
    E.TARGET_FORBIDDEN,
    'the client certificate does not chain to proxy.tls.clientCaFile',
  ),
  CLIENT_CERT_NOT_ALLOWED: rejection(
    'PCL_ERR_CLIENT_CERT_NOT_ALLOWED',
    403,
    'client_cert_not_allowed',
    E.TARGET_FORBIDDEN,
    'the client certificate is not in clients.certificates (subjects or SHA-256 thumbprints)',
  ),
  // Capacity and lifecycle: try again later.
  LIMIT_TOTAL: rejection('PCL_ERR_LIMIT_TOTAL', 503, 'limit_total', E.LIMIT_REACHED, 'too many connections', 1),
  LIMIT_CLIENT: rejection('PCL_ERR_LIMIT_CLIENT', 429, 'limit_client', E.LIMIT_REACHED, 'too many connections from this client', 1),
  LIMIT_DROPPED: rejection(
    'PCL_ERR_LIMIT_DROPPED',
    0,
    'limit_total',
    E.LIMIT_REACHED,
    'past the hard connection cap (maxConnections + 256): closed unanswered',
  ),
  FD_LIMIT: rejection(
    'PCL_ERR_FD_LIMIT',
    503,
    'fd_exhausted',
    E.LIMIT_REACHED,
    'the gateway is at its file-descriptor budget (RLIMIT_NOFILE): too many connections',
    1,
  ),
  FD_EXHAUSTED: rejection(
    'PCL_ERR_FD_EXHAUSTED',
    503,
    'fd_exhausted',
    E.LIMIT_REACHED,
    'the gateway ran out of file descriptors (EMFILE/ENFILE) connecting to the destination',
    1,
  ),
  FD_DROPPED: rejection(
    'PCL_ERR_FD_DROPPED',
    0,
    'fd_exhausted',
    E.LIMIT_REACHED,
    'past the file-descriptor budget and the descriptors kept for refusals: closed unanswered',
  ),
  DRAINING: rejection('PCL_ERR_DRAINING', 503, 'draining', E.LIMIT_REACHED, 'gateway is shutting down', 5),
  // Protocol: what the proxy does not accept.
  NOT_PROXY_REQUEST: rejection(
    'PCL_ERR_NOT_PROXY_REQUEST',
    400,
    'not_proxy_request',
    E.NOT_PROXY_REQUEST,
    'this is a forward proxy: send CONNECT host:port or an absolute http:// URL',
  ),
  BAD_AUTHORITY: rejection('PCL_ERR_BAD_AUTHORITY', 400, 'bad_request', E.BAD_REQUEST, 'CONNECT needs host:port'),
  BAD_URL: rejection('PCL_ERR_BAD_URL', 400, 'bad_request', E.BAD_REQUEST, 'request-target must be an absolute http:// URL'),
  BAD_SCHEME: rejection('PCL_ERR_BAD_SCHEME', 400, 'bad_request', E.BAD_REQUEST, 'only http:// URLs are forwarded (use CONNECT for https)'),
  PARSE: rejection('PCL_ERR_PARSE', 400, 'bad_request', E.BAD_REQUEST, 'malformed request'),
  REQUEST_LINE: rejection('PCL_ERR_REQUEST_LINE', 400, 'bad_request', E.BAD_REQUEST, 'request line must be: method SP request-target SP HTTP/1.x CRLF'),
  HTTP_VERSION: rejection('PCL_ERR_HTTP_VERSION', 505, 'bad_request', E.BAD_REQUEST, 'only HTTP/1.0 and HTTP/1.1 are spoken'),
  DUPLICATE_HOST: rejection('PCL_ERR_DUPLICATE_HOST', 400, 'bad_request', E.BAD_REQUEST, 'more than one Host header'),
  UPGRADE: rejection('PCL_ERR_UPGRADE', 501, 'bad_request', E.BAD_REQUEST, 'protocol upgrades are not forwarded'),
  METHOD: rejection('PCL_ERR_METHOD', 405, 'method_not_allowed', E.METHOD_NOT_ALLOWED, 'method is not forwarded'),
  TRANSFER_ENCODING: rejection('PCL_ERR_TRANSFER_ENCODING', 501, 'unsupported_transfer_encoding', E.BAD_REQUEST, 'only chunked transfer-encoding is supported'),
  HEADER_TOO_LARGE: rejection('PCL_ERR_HEADER_TOO_LARGE', 431, 'header_too_large', E.BAD_REQUEST, 'request headers too large'),
  HEADER_TIMEOUT: rejection('PCL_ERR_HEADER_TIMEOUT', 408, 'header_timeout', E.TIMEOUT, 'request headers not received in time'),
  // TLS inspection (src/proxy/tls-peek.ts): the handshake inside an established tunnel. The client
  // has its 200 already, so a refusal closes both sides (status 0).
  TLS_REQUIRED: rejection('PCL_ERR_TLS_REQUIRED', 0, 'tls_required', E.TLS_PARSE, "the tunnel's first bytes are not a TLS handshake and its rule requires TLS"),
  TLS_MALFORMED: rejection('PCL_ERR_TLS_MALFORMED', 0, 'tls_malformed', E.TLS_PARSE, 'the TLS handshake in the tunnel does not parse'),
  TLS_TOO_LARGE: rejection('PCL_ERR_TLS_TOO_LARGE', 0, 'tls_malformed', E.TLS_PARSE, 'the TLS handshake is larger than the gateway reads before deciding'),
  TLS_TIMEOUT: rejection('PCL_ERR_TLS_TIMEOUT', 0, 'tls_timeout', E.TLS_PEEK_TIMEOUT, 'no TLS handshake decided within proxy.tlsInspection.peekTimeoutMs'),
  TLS_SNI_MISMATCH: rejection('PCL_ERR_TLS_SNI_MISMATCH', 0, 'tls_sni_mismatch', E.TLS_SNI_MISMATCH, 'the TLS server name (SNI) is not the CONNECT host'),
  TLS_VERSION: rejection('PCL_ERR_TLS_VERSION', 0, 'tls_version', E.TLS_VERSION, "the client offers only TLS versions below the rule's minVersion"),
  TLS_VERSION_MAX: rejection('PCL_ERR_TLS_VERSION_MAX', 0, 'tls_version', E.TLS_VERSION, "the server chose a TLS version above the rule's maxVersion"),
  TLS_CLIENT_CERT: rejection(
    'PCL_ERR_TLS_CLIENT_CERT',
    0,
    'tls_client_cert',
    E.TARGET_FORBIDDEN,
    'the client certificate in the TLS 1.2 handshake is not in clients.certificates',
  ),
  // Network: the destination could not be reached (codes thrown by src/dial keep their name here).
  DNS_NOTFOUND: failure('PCL_ERR_DNS_NOTFOUND', 502, 'dns_not_found', E.NETWORK_ERROR, 'destination host name not found'),
  DNS_TIMEOUT: failure('PCL_ERR_DNS_TIMEOUT', 504, 'dns_timeout', E.NETWORK_ERROR, 'DNS lookup timed out'),
  DNS: failure('PCL_ERR_DNS', 502, 'dns_error', E.NETWORK_ERROR, 'DNS lookup failed'),
  CONNECT_REFUSED: failure('PCL_ERR_CONNECT_REFUSED', 502, 'connect_refused', E.NETWORK_ERROR, 'destination refused the connection'),
  CONNECT_TIMEOUT: failure('PCL_ERR_CONNECT_TIMEOUT', 504, 'connect_timeout', E.NETWORK_ERROR, 'connecting to the destination timed out'),
  CONNECT_UNREACHABLE: failure('PCL_ERR_CONNECT_UNREACHABLE', 502, 'connect_error', E.NETWORK_ERROR, 'destination unreachable'),
  CONNECT: failure('PCL_ERR_CONNECT', 502, 'connect_error', E.NETWORK_ERROR, 'connecting to the destination failed'),
  UPSTREAM_TIMEOUT: failure('PCL_ERR_UPSTREAM_TIMEOUT', 504, 'upstream_timeout', E.NETWORK_ERROR, 'destination did not answer in time'),
  UPSTREAM: failure('PCL_ERR_UPSTREAM', 502, 'upstream_error', E.NETWORK_ERROR, 'destination failed'),
  // Relay (upstream) proxies: upstreamProxy in the config (src/dial/relay.ts).
  RELAY_AUTH: failure('PCL_ERR_RELAY_AUTH', 502, 'relay_auth', E.RELAY_AUTH_FAILED, 'the relay proxy refused our credentials (407): check upstreamProxy'),
  RELAY_UNAVAILABLE: failure('PCL_ERR_RELAY_UNAVAILABLE', 502, 'relay_unavailable', E.RELAY_UNAVAILABLE, 'no relay proxy could carry the connection'),
  RELAY_REFUSED: failure(
    'PCL_ERR_RELAY_REFUSED',
    502,
    'relay_refused',
    E.NETWORK_ERROR,
    'the relay proxy would not open the tunnel (an error answer, or none in time): the destination may be unreachable from it or refused by its rules',
  ),
  INTERNAL: failure('PCL_ERR_INTERNAL', 0, 'internal_error', E.INTERNAL_ERROR, 'internal error: the connection is closed, the process goes on'),
  // Outcomes of accepted requests (nothing more is answered).
  CLIENT_CLOSED: outcome('PCL_ERR_CLIENT_CLOSED', 499, 'client_closed', "the client hung up before the destination answered (not the destination's fault)"),
  UPSTREAM_BODY: outcome('PCL_ERR_UPSTREAM_BODY', 0, 'upstream_error', 'the destination failed after the response head was sent: the client connection is cut'),
} as const;

/**
 * The telemetry forwarder (src/forwarder): its ingest refusals and its spool's errors. Each Azure
 * API answers in its own shape (status and body code per API: forwarder/ingest/answers.ts takes
 * code, reason and event from here); `status` here is the Logs Ingestion API's. Counted on
 * portcullis_forwarder_uploads_refused_total{reason}, a label set of its own.
 */
export const ForwarderErrors = {
  // What the upload looks like.
  FWD_API_VERSION: rejection('PCL_ERR_FWD_API_VERSION', 400, 'bad_api_version', E.FWD_BAD_UPLOAD, 'api-version is missing or not supported'),
  FWD_BAD_JSON: rejection('PCL_ERR_FWD_BAD_JSON', 400, 'bad_json', E.FWD_BAD_UPLOAD, 'the body is not valid JSON'),
  FWD_NOT_ARRAY: rejection('PCL_ERR_FWD_NOT_ARRAY', 400, 'not_array', E.FWD_BAD_UPLOAD, 'the body must be a JSON array of objects'),
  FWD_BAD_GZIP: rejection('PCL_ERR_FWD_BAD_GZIP', 400, 'bad_gzip', E.FWD_BAD_UPLOAD, 'the gzip body could not be decompressed'),
  FWD_ENCODING: rejection('PCL_ERR_FWD_ENCODING', 415, 'unsupported_encoding', E.FWD_BAD_UPLOAD, 'Content-Encoding must be gzip or absent'),
  FWD_CONTENT_TYPE: rejection('PCL_ERR_FWD_CONTENT_TYPE', 415, 'unsupported_media_type', E.FWD_BAD_UPLOAD, 'Content-Type must be application/json'),
  FWD_LOG_TYPE: rejection(
    'PCL_ERR_FWD_LOG_TYPE',
    400,
    'bad_log_type',
    E.FWD_BAD_UPLOAD,
    'Log-Type is missing or not letters, digits and underscores (Data Collector API)',
  ),
  FWD_TOO_LARGE: rejection(
    'PCL_ERR_FWD_TOO_LARGE',
    413,
    'too_large',
    E.FWD_BAD_UPLOAD,
    "the body is over the API's size limit (1 MiB; Data Collector API 30 MB)",
  ),
  FWD_RECORD_TOO_LARGE: rejection(
    'PCL_ERR_FWD_RECORD_TOO_LARGE',
    413,
    'record_too_large',
    E.FWD_BAD_UPLOAD,
    'a single record is larger than one upstream batch',
  ),
  FWD_BODY_TIMEOUT: rejection('PCL_ERR_FWD_BODY_TIMEOUT', 408, 'body_timeout', E.FWD_UPLOAD_TIMEOUT, 'the upload stalled'),
  // Who may send what.
  FWD_UNAUTHORIZED: rejection('PCL_ERR_FWD_UNAUTHORIZED', 401, 'unauthorized', E.FWD_AUTH_FAILED, 'missing or invalid credentials (Data Collector API: 403)'),
  FWD_DATE: rejection('PCL_ERR_FWD_DATE', 400, 'bad_date', E.FWD_AUTH_FAILED, "x-ms-date is missing, malformed, or too far from the gateway's clock"),
  FWD_FORBIDDEN: rejection('PCL_ERR_FWD_FORBIDDEN', 403, 'route_forbidden', E.FWD_ROUTE_FORBIDDEN, 'this identity may not send to this destination'),
  FWD_UNKNOWN_ROUTE: rejection('PCL_ERR_FWD_UNKNOWN_ROUTE', 404, 'unknown_route', E.FWD_ROUTE_FORBIDDEN, 'no route for this destination on this gateway'),
  // Capacity and lifecycle: nothing was accepted, retry later (Retry-After: forwarder.limits.retryAfterS).
  SPOOL_FULL: rejection('PCL_ERR_SPOOL_FULL', 429, 'spool_full', E.FWD_OVERLOAD, 'the spool is at its byte limit (Data Collector API: 503)'),
  FWD_MEMORY: rejection('PCL_ERR_FWD_MEMORY', 429, 'memory', E.FWD_OVERLOAD, 'the gateway is short of memory (Data Collector API: 503)'),
  SPOOL_IO: rejection('PCL_ERR_SPOOL_IO', 503, 'spool_io', E.FWD_SPOOL_ERROR, 'the spool could not write to disk; nothing was accepted'),
  FWD_DRAINING: rejection('PCL_ERR_FWD_DRAINING', 503, 'draining', E.FWD_LIFECYCLE, 'the gateway is shutting down'),
  SPOOL_CLOSED: rejection('PCL_ERR_SPOOL_CLOSED', 503, 'draining', E.FWD_LIFECYCLE, 'the spool is closed (shutting down)'),
  // Inside the gateway.
  FWD_INTERNAL: failure('PCL_ERR_FWD_INTERNAL', 500, 'internal', E.FWD_POOL_ERROR, 'internal error'),
  SPOOL_INPUT: failure(
    'PCL_ERR_SPOOL_INPUT',
    500,
    'internal',
    E.INTERNAL_ERROR,
    'an entry cannot be spooled (stream name over 65535 bytes, payload over 4 GiB, a bad records count, or a deflate run without its prefix)',
  ),
  SPOOL_NOT_TAKEN: failure(
    'PCL_ERR_SPOOL_NOT_TAKEN',
    500,
    'internal',
    E.INTERNAL_ERROR,
    'spool entries were read back that are not taken for a batch (a bug in the caller: the entries stay in the spool)',
  ),
  FWD_UPSTREAM_FORBIDDEN: failure(
    'PCL_ERR_FWD_UPSTREAM_FORBIDDEN',
    0,
    'upstream_forbidden',
    E.FWD_UPSTREAM_FORBIDDEN,
    "the gateway's own policy refuses an upstream destination: records wait in the spool",
  ),
} as const;

/**
 * The admin API (src/admin, /api/v1): answered as `{"error":{"code","message"}}`, with the config
 * issues for an invalid change. Nothing is counted on the proxy's metrics; each is logged with its event.
 */
export const ApiErrors = {
  API_DISABLED: rejection('PCL_ERR_API_DISABLED', 404, 'api_disabled', E.API_AUTH_FAILED, 'management API is off: set admin.token (or tokenFile / tokenEnv)'),
  API_AUTH: rejection('PCL_ERR_API_AUTH', 401, 'unauthorized', E.API_AUTH_FAILED, 'bearer token required'),
  API_BAD_REQUEST: rejection(
    'PCL_ERR_API_BAD_REQUEST',
    400,
    'bad_request',
    E.API_CHANGE_REFUSED,
    'the request does not match the API (see /api/v1/openapi.json)',
  ),
  API_INVALID: rejection(
    'PCL_ERR_API_INVALID',
    400,
    'invalid_config',
    E.API_CHANGE_REFUSED,
    'the change is refused: the resulting configuration would not load; nothing was written',
  ),
  API_NOT_FOUND: rejection('PCL_ERR_API_NOT_FOUND', 404, 'not_found', E.API_CHANGE_REFUSED, 'no such item in the configuration'),
  API_CONFLICT: rejection(
    'PCL_ERR_API_CONFLICT',
    409,
    'conflict',
    E.API_CHANGE_REFUSED,
    'the config file changed on disk during the change; nothing was written, try again',
  ),
  API_NO_FILE: rejection(
    'PCL_ERR_API_NO_FILE',
    409,
    'no_config_file',
    E.API_CHANGE_REFUSED,
    'the gateway runs on the built-in default: there is no config file to change (start it with --config)',
  ),
  API_RELOAD: failure(
    'PCL_ERR_API_RELOAD',
    500,
    'reload_failed',
    E.BAD_CONFIG,
    'the change was written but the reload refused it; the running configuration is unchanged',
  ),
} as const;

export type ApiErrorEntry = (typeof ApiErrors)[keyof typeof ApiErrors];
/** Every entry of the admin API, in declaration order. */
export const apiCatalogue: readonly AnsweredEntry[] = Object.freeze(Object.values(ApiErrors));

/**
 * The syslog collector (src/syslog): what it refuses or cuts. There is no HTTP answer (status 0):
 * TCP senders see their connection closed, UDP senders nothing; each is counted on
 * portcullis_syslog_* and logged with its event.
 */
export const SyslogErrors = {
  SYSLOG_FRAMING: failure(
    'PCL_ERR_SYSLOG_FRAMING',
    0,
    'framing',
    E.SYSLOG_FRAMING,
    'an octet-counted stream has no valid length where a frame starts: the connection is closed',
  ),
  SYSLOG_TOO_LONG: failure(
    'PCL_ERR_SYSLOG_TOO_LONG',
    0,
    'too_long',
    E.SYSLOG_TOO_LONG,
    'a message is longer than syslog.maxMessageBytes: it is kept cut to that length',
  ),
  SYSLOG_CONN_LIMIT: failure(
    'PCL_ERR_SYSLOG_CONN_LIMIT',
    0,
    'connection_limit',
    E.SYSLOG_CONN_LIMIT,
    'syslog.maxConnections TCP/TLS connections are open: a new one is closed at accept',
  ),
  SYSLOG_TLS: failure(
    'PCL_ERR_SYSLOG_TLS',
    0,
    'tls_handshake',
    E.SYSLOG_TLS,
    'the TLS handshake failed (no or untrusted client certificate when one is required, protocol error)',
  ),
  SYSLOG_IDLE: failure('PCL_ERR_SYSLOG_IDLE', 0, 'idle_timeout', E.SYSLOG_IDLE, 'a connection sent nothing for syslog.idleTimeoutMs: it is closed'),
  SYSLOG_UDP_DROP: failure(
    'PCL_ERR_SYSLOG_UDP_DROP',
    0,
    'udp_drop',
    E.SYSLOG_UDP_DROPS,
    'UDP datagrams were dropped (spool full, too many in the pipeline, or the kernel receive buffer overflowed)',
  ),
  SYSLOG_RELP_PROTOCOL: failure(
    'PCL_ERR_SYSLOG_RELP_PROTOCOL',
    0,
    'relp_protocol',
    E.SYSLOG_RELP_PROTOCOL,
    "a RELP frame is malformed or breaks the protocol (header, trailer, txnr sequence, a command before open): the connection is closed; unacknowledged messages are the sender's to send again",
  ),
  SYSLOG_RELP_NOT_ACKED: failure(
    'PCL_ERR_SYSLOG_RELP_NOT_ACKED',
    0,
    'relp_not_acked',
    E.SYSLOG_RELP_NOT_ACKED,
    'RELP messages could not be spooled: they are not acknowledged and the connection is closed, so the sender sends them again',
  ),
  SYSLOG_SPOOL: failure(
    'PCL_ERR_SYSLOG_SPOOL',
    0,
    'spool_error',
    E.SYSLOG_SPOOL_ERROR,
    'parsed messages could not be spooled (disk error or pool failure): they are lost, counted',
  ),
} as const;

/** Why the forwarder refused an upload: the forwarder's metrics label (a closed set). */
export type ForwarderReason = (typeof ForwarderErrors)[keyof typeof ForwarderErrors]['reason'] | (typeof SyslogErrors)[keyof typeof SyslogErrors]['reason'];
export type ForwarderEntry = AnsweredEntry<ForwarderReason>;

export type ErrorName = keyof typeof Errors;

/** Why a request was refused or ended badly. A closed set: it is a metrics label. */
export type Reason = (typeof Errors)[ErrorName]['reason'];

/**
 * Codes that are not a refusal of a request: the start or a reload refused, a warning of
 * `portcullis check-config`, a credential that failed, and the admin listener's own answers. Each
 * is in the message or log line that reports it (with `event` when one is logged); the modules
 * that raise them keep the code where they raise it, and a unit test checks that every
 * `PCL_ERR_*` in src/ is declared in one of these lists.
 */
export interface NoticeEntry {
  readonly code: string;
  /** The HTTP status when something is answered; 0 = none. */
  readonly status: number;
  readonly event: EventCode | null;
  /** Where an operator meets it. */
  readonly where: string;
  readonly message: string;
}

function notice(code: string, status: number, event: EventCode | null, where: string, message: string): NoticeEntry {
  return Object.freeze({ code, status, event, where, message });
}

export const NoticeCodes = {
  CONFIG: notice(
    'PCL_ERR_CONFIG',
    0,
    E.BAD_CONFIG,
    'start, reload, check-config',
    'the configuration is invalid: each issue names its key (and line); the start is refused, a reload keeps the running configuration',
  ),
  SERVICE_START: notice(
    'PCL_ERR_SERVICE_START',
    0,
    E.START_FAILED,
    'start',
    'a part of the gateway could not start (an address in use, a file it cannot read): the gateway exits 1, naming the config key',
  ),
  SECRET_FILE: notice(
    'PCL_ERR_SECRET_FILE',
    0,
    E.BAD_CONFIG,
    'start, reload, check-config',
    'a `<name>File` secret cannot be read (the message names the key and file, never the value)',
  ),
  SECRET_ENV: notice(
    'PCL_ERR_SECRET_ENV',
    0,
    E.BAD_CONFIG,
    'start, reload, check-config',
    'a `<name>Env` secret names an environment variable that is not set or empty',
  ),
  SECRET_VALUE: notice('PCL_ERR_SECRET_VALUE', 0, E.BAD_CONFIG, 'start, reload, check-config', 'a secret is not usable (shorter than its key requires)'),
  SECRET_MODE: notice(
    'PCL_ERR_SECRET_MODE',
    0,
    null,
    'check-config (a warning)',
    'the config file holds a secret inline and its group or other users may read it: chmod 600 it, or use `<name>File` / `<name>Env`',
  ),
  FWD_SECRET: notice(
    'PCL_ERR_FWD_SECRET',
    0,
    E.BAD_CONFIG,
    'start, reload, check-config',
    'a forwarder key or credential secret (`...File`, `...Env`) cannot be read or is not set',
  ),
  PROXY_AUTH_FILE: notice('PCL_ERR_PROXY_AUTH_FILE', 0, E.START_FAILED, 'start, reload', 'proxy.auth.htpasswdFile cannot be read'),
  PROXY_TLS_FILE: notice('PCL_ERR_PROXY_TLS_FILE', 0, E.START_FAILED, 'start, reload', "proxy.tls's certificate, key or client CA cannot be read or used"),
  DNS_OVERRIDE: notice('PCL_ERR_DNS_OVERRIDE', 0, E.START_FAILED, 'start, reload', 'a dns.overrides value is not an IP address'),
  POLICY: notice(
    'PCL_ERR_POLICY',
    0,
    E.START_FAILED,
    'start, reload',
    'an allowlist value passed the config checks but does not compile: a fault of the gateway, please report it with the config',
  ),
  UPSTREAM_TOKEN: notice(
    'PCL_ERR_UPSTREAM_TOKEN',
    0,
    E.FWD_TOKEN_REFRESH,
    'forwarder (portcullis_forwarder_token_failures_total)',
    'an Entra token for an upstream credential could not be obtained; its batches stay in the spool and are retried',
  ),
  METRICS_DISABLED: notice('PCL_ERR_METRICS_DISABLED', 404, null, 'admin listener: GET /metrics', 'metrics are off (admin.metrics: false)'),
  ADMIN: notice(
    'PCL_ERR_ADMIN',
    500,
    E.INTERNAL_ERROR,
    'admin listener',
    'an admin request failed for a reason without a code of its own (the message says it; 5xx are logged with the error)',
  ),
} as const;

/** Every notice code, in declaration order. */
export const noticeCatalogue: readonly NoticeEntry[] = Object.freeze(Object.values(NoticeCodes));

/** A refusal the proxy answers with an HTTP status, logs with an event code, and counts by reason. */
export type Refusal = AnsweredEntry<Reason>;

/** Every entry of the proxy, in declaration order. */
export const catalogue: readonly CatalogueEntry<Reason>[] = Object.freeze(Object.values(Errors));
/** Every entry of the forwarder, in declaration order. */
export const forwarderCatalogue: readonly ForwarderEntry[] = Object.freeze([...Object.values(ForwarderErrors), ...Object.values(SyslogErrors)]);

const byCode = new Map<string, CatalogueEntry<Reason>>(catalogue.map((e) => [e.code, e]));

/** The entry with this stable code, if there is one. */
export function entryForCode(code: string): CatalogueEntry<Reason> | undefined {
  return byCode.get(code);
}

/** The entry with dynamic detail (an errno, a method) appended to its message; the rest is the entry's. */
export function withDetail(entry: Refusal, detail: string): Refusal {
  return Object.freeze({ ...entry, message: `${entry.message}: ${detail}` });
}

function reasonsOf(kind: CatalogueEntry['kind']): ReadonlySet<Reason> {
  return new Set(catalogue.filter((e) => e.kind === kind).map((e) => e.reason));
}

/** Reasons counted on portcullis_rejections_total. */
export const REJECTION_REASONS: ReadonlySet<Reason> = reasonsOf('rejection');
/** Reasons counted on portcullis_errors_total. */
export const ERROR_REASONS: ReadonlySet<Reason> = reasonsOf('error');

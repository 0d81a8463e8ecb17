/**
 * Stable event codes for log records. Where the Log Analytics gateway has an event ID for the same
 * thing, we use its number so existing alert queries carry over.
 */
export const Events = {
  /** A CONNECT tunnel was set up and has now ended (the access record). LA gateway: 103. */
  TUNNEL: 103,
  /** A request that is not a proxy request (origin-form, unsupported scheme). LA gateway: 104. */
  NOT_PROXY_REQUEST: 104,
  /** Target refused: host, port, IP literal, private address. LA gateway: 105. */
  TARGET_FORBIDDEN: 105,
  /** Source address refused by the client ACL. */
  CLIENT_FORBIDDEN: 107,
  /** A connection limit refused a client (total or per client). */
  LIMIT_REACHED: 108,
  /** A plain-HTTP request was forwarded (the access record). */
  HTTP_FORWARD: 109,
  /** Method not allowed through the proxy. */
  METHOD_NOT_ALLOWED: 110,
  /** Policy would refuse, but report mode let it through. */
  REPORT_ONLY: 111,
  /** Listener bound / process lifecycle. */
  LIFECYCLE: 200,
  /** Configuration reloaded. */
  CONFIG_RELOADED: 201,
  /** Malformed request or client protocol error. LA gateway: 400 (generic error). */
  BAD_REQUEST: 400,
  /** Bad configuration. LA gateway: 401. */
  BAD_CONFIG: 401,
  /** Network error towards the destination (DNS, connect, reset). LA gateway: 403. */
  NETWORK_ERROR: 403,
  /** A timeout closed a connection (connect, idle, header, lifetime). */
  TIMEOUT: 404,
  /** Forwarder spool opened: what replay found (segments, entries, torn tails, corrupt frames, losses). */
  SPOOL_RECOVERED: 620,
  /** A torn tail (a frame cut or damaged at the end of a segment) was cut off on replay. */
  SPOOL_TORN_TAIL: 621,
  /** A damaged frame in the middle of a segment was skipped on replay (records after it recovered). */
  SPOOL_CORRUPT_FRAME: 622,
  /** An append was refused because the spool is at its byte limit. */
  SPOOL_FULL: 623,
  /** A disk error on the spool (write, fsync, read, delete): the spool reports itself unhealthy. */
  SPOOL_IO_ERROR: 624,
  /** An unexpected internal error (a bug): logged, the connection closed, the process goes on. */
  INTERNAL_ERROR: 500,
} as const;

export type EventCode = (typeof Events)[keyof typeof Events];

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
  /**
   * Inside a tunnel (TLS inspection): the ClientHello offers only TLS versions below the rule's
   * minimum, or the server chose one above its maximum. LA gateway: 106 (unsupported TLS version).
   */
  TLS_VERSION: 106,
  /** Source address refused by the client ACL. */
  CLIENT_FORBIDDEN: 107,
  /**
   * The gateway would not take a connection now: a connection limit (total or per client) or a
   * drain in progress. Answered 429/503 with Retry-After; the `reason` says which.
   */
  LIMIT_REACHED: 108,
  /** A plain-HTTP request was forwarded (the access record). */
  HTTP_FORWARD: 109,
  /** Method not allowed through the proxy. */
  METHOD_NOT_ALLOWED: 110,
  /** Policy would refuse, but report mode let it through. */
  REPORT_ONLY: 111,
  /**
   * The process is short of file descriptors (connections refused at the descriptor budget, or a
   * dial failed with EMFILE/ENFILE): logged once when it starts, then at most once per interval
   * with counts, and once more when descriptors are available again.
   */
  DESCRIPTORS_SHORT: 112,
  /** A relay (upstream) proxy failed (connect error, timeout, bad answer): it is skipped for upstreamProxy.backoffMs. */
  RELAY_DOWN: 113,
  /** A relay proxy that was down carried a connection again. */
  RELAY_UP: 114,
  /** A relay proxy answered 407: its credentials (upstreamProxy.proxies[].username/password) were refused. */
  RELAY_AUTH_FAILED: 115,
  /** No relay proxy could carry the connection (every one down or failing): answered 502. */
  RELAY_UNAVAILABLE: 116,
  // Client identity (proxy Basic authentication, TLS proxy listener): 117-121.
  /** Proxy Basic authentication missing or wrong: answered 407 with Proxy-Authenticate (never the password in the log). */
  PROXY_AUTH_FAILED: 117,
  /** Too many failed proxy authentications from one address: answered 429 without verifying. */
  PROXY_AUTH_RATE_LIMITED: 118,
  /** A TLS handshake on the TLS proxy listener failed (protocol, certificate), before any request. */
  CLIENT_TLS_FAILED: 119,
  /** The htpasswd file was (re)loaded, or lines of it were skipped (unsupported scheme, duplicate user). */
  PROXY_AUTH_FILE: 120,
  /** Inside a tunnel (TLS inspection): the ClientHello's server name (SNI) is not the CONNECT host. */
  TLS_SNI_MISMATCH: 122,
  /** Inside a tunnel (TLS inspection): no decision within proxy.tlsInspection.peekTimeoutMs on a rule that requires TLS. */
  TLS_PEEK_TIMEOUT: 123,
  /** Listener bound / process lifecycle. */
  LIFECYCLE: 200,
  /** Configuration reloaded. */
  CONFIG_RELOADED: 201,
  /** A service could not start (address in use, permission, certificate): the gateway exits. */
  START_FAILED: 202,
  /**
   * systemd readiness (sd_notify): the notification could not be sent natively (the notify addon
   * is missing, or a send failed). Logged once; the gateway goes on, through `systemd-notify` when
   * that program exists, else without telling systemd (a Type=notify unit then times out its start).
   */
  SYSTEMD_NOTIFY: 210,
  /**
   * Cluster (debug level): every worker sent a rebalance's new connection-limit share has applied
   * it (round, the shares now enforced). Until then a worker may still enforce its older share.
   */
  LIMIT_SHARES_APPLIED: 211,
  /** Cluster (debug level): a message to or from a worker could not be sent (it is exiting, or the IPC channel broke); the process goes on. */
  WORKER_IPC_SEND: 212,

  // Management API and CLI (issue 11): 203-209.
  /** A change made through the admin API was written to the config file and applied: who (client, actor), what (action, changed keys). */
  API_CONFIG_CHANGED: 203,
  /** An admin API request without a valid bearer token (401), or to the API while it is off (no admin.token). Never logs the token. */
  API_AUTH_FAILED: 204,
  /** A change through the admin API was refused and nothing was written (invalid result, conflict, unknown item, no config file). */
  API_CHANGE_REFUSED: 205,
  /** Malformed request or client protocol error. LA gateway: 400 (generic error). */
  BAD_REQUEST: 400,
  /** Bad configuration. LA gateway: 401. */
  BAD_CONFIG: 401,
  /**
   * Inside a tunnel (TLS inspection): not TLS on a rule that requires it, or a handshake that does
   * not parse or is larger than the gateway reads. LA gateway: 402 (TLS parse error).
   */
  TLS_PARSE: 402,
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
  /**
   * On replay, a sealed entry failed the check its upload was getting when the process stopped:
   * that upload was never acknowledged, so the entry is dropped, not sent.
   */
  SPOOL_UNVERIFIED_DROPPED: 625,
  /** An unexpected internal error (a bug): logged, the connection closed, the process goes on. */
  INTERNAL_ERROR: 500,

  // Forwarder pipeline (issue 9): 600-619 (620-629: spool).
  /** Forwarder started, stopped, ingest listener bound, or drained. */
  FWD_LIFECYCLE: 600,
  /** The ingest listener serves plaintext HTTP (forwarder.plaintext: true). */
  FWD_PLAINTEXT: 601,
  /** An upload was refused for its content (bad JSON, not an array, too large, bad gzip, bad headers). */
  FWD_BAD_UPLOAD: 602,
  /** An upload without valid credentials (401) or a Data Collector signature that does not verify (403). */
  FWD_AUTH_FAILED: 603,
  /** A known identity sent to a route it is not allowed (403) or to an unknown route (404). */
  FWD_ROUTE_FORBIDDEN: 604,
  /** An upload refused because the spool is full or memory is short (429/503 + Retry-After). */
  FWD_OVERLOAD: 605,
  /** The spool failed to write: the upload got 503 and /readyz is red. */
  FWD_SPOOL_ERROR: 606,
  /** An upload timed out (stalled body). */
  FWD_UPLOAD_TIMEOUT: 607,
  /** A batch is retried (network error, 408, 429, 5xx). */
  FWD_UPSTREAM_RETRY: 608,
  /** A batch the upstream refused for good was written to the dead-letter folder. */
  FWD_DEAD_LETTER: 609,
  /** The Entra token was refreshed after a 401/403. */
  FWD_TOKEN_REFRESH: 610,
  /** The upstream connection is refused by the destination allowlist or DNS guard. */
  FWD_UPSTREAM_FORBIDDEN: 611,
  /** The worker pool failed a task (a bug or a crashed thread). */
  FWD_POOL_ERROR: 612,
  /** One accepted upload (debug level): identity, route, records, bytes. */
  FWD_UPLOAD: 613,
  /** One batch delivered upstream (debug level). */
  FWD_BATCH_SENT: 614,
  // ---- syslog collector (700-749) ----
  /** The syslog collector started, stopped, or a listener was bound. */
  SYSLOG_LIFECYCLE: 700,
  /** A listener or connection socket error (the connection is closed; the process goes on). */
  SYSLOG_SOCKET_ERROR: 701,
  /** An octet-counted TCP stream lost its framing (not a number where a length belongs): the connection is closed. */
  SYSLOG_FRAMING: 702,
  /** A message over syslog.maxMessageBytes was truncated (counted; logged at most once a minute). */
  SYSLOG_TOO_LONG: 703,
  /** A TCP/TLS connection was closed at accept: syslog.maxConnections reached. */
  SYSLOG_CONN_LIMIT: 704,
  /** A TLS handshake failed (no or bad client certificate, protocol error). */
  SYSLOG_TLS: 705,
  /** The spool is full: TCP/TLS reading is paused until there is room (UDP datagrams are dropped and counted). */
  SYSLOG_BACKPRESSURE: 706,
  /** UDP datagrams were dropped (by us, or by the kernel's receive buffer). */
  SYSLOG_UDP_DROPS: 707,
  /** Messages that did not parse were kept as raw Syslog records (counted; logged at most once a minute). */
  SYSLOG_PARSE_FAILURE: 708,
  /** Parsed records could not be spooled (disk error, pool error): that block is lost, logged with counts. */
  SYSLOG_SPOOL_ERROR: 709,
  /** Messages that no route takes were not kept (counted; logged at most once a minute). */
  SYSLOG_UNROUTED: 710,
  /** A TCP/TLS connection idle for syslog.idleTimeoutMs was closed. */
  SYSLOG_IDLE: 711,
  /** A RELP frame was malformed or broke the protocol (bad header, no LF trailer, txnr out of sequence, a command before open): the connection is closed. */
  SYSLOG_RELP_PROTOCOL: 712,
  /** A RELP session opened or ended (debug level): the sender's offers, the txnr reached. */
  SYSLOG_RELP_SESSION: 713,
  /** A RELP connection was closed with messages not acknowledged because they could not be spooled: the sender sends them again. */
  SYSLOG_RELP_NOT_ACKED: 714,
} as const;

export type EventCode = (typeof Events)[keyof typeof Events];

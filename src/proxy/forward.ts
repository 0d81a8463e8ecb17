import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import httpProxy from 'http-proxy';
import { targetFromAbsoluteUrl, type Target } from '../policy/index.js';
import { isPortcullisError } from '../util/errors.js';
import { Events } from '../log/events.js';
import type { AccessRecord } from './access.js';
import { admitRoute, connState, newAccessRecord, recordAccess, recordRefusal, targetLabel, type ProxyContext } from './context.js';
import { refusal, sendRefusal, type Refusal } from './refusal.js';
import { isRefused, route } from './route.js';

/** Methods forwarded as plain HTTP. TRACE (reflects credentials) and anything exotic get 405. */
const FORWARDED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy's own credentials header. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade'];

const STATE = Symbol('portcullis.forward');
interface ForwardState {
  rec: AccessRecord;
  started: number;
  timedOut: boolean;
  /** What the client asked for, read before its hop-by-hop headers are stripped. */
  keepAlive: boolean;
}
type ForwardReq = IncomingMessage & { [STATE]?: ForwardState };

/** RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive". */
function clientWantsKeepAlive(req: IncomingMessage): boolean {
  const tokens = String(req.headers['connection'] ?? '').toLowerCase();
  return req.httpVersion === '1.0' ? /(^|,)\s*keep-alive\s*(,|$)/.test(tokens) : !/(^|,)\s*close\s*(,|$)/.test(tokens);
}

function stripHopByHop(headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders): void {
  const listed = headers['connection'];
  if (typeof listed === 'string') {
    for (const name of listed.split(',')) {
      const n = name.trim().toLowerCase();
      // Never let a client strip framing or the Host header by naming them in Connection.
      if (n && n !== 'host' && n !== 'content-length' && n !== 'transfer-encoding') delete headers[n];
    }
  }
  for (const h of HOP_BY_HOP) delete headers[h];
}

/**
 * Plain-HTTP forwarding (absolute-form `GET http://host/path`) through http-proxy, to the address
 * the policy vetted. Upstream connections are pooled per address with keep-alive.
 */
export class HttpForwarder {
  private readonly proxy: httpProxy;
  private readonly agent: http.Agent;

  constructor(private readonly ctx: ProxyContext) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: ctx.config.timeouts.idleMs, scheduling: 'lifo' });
    this.proxy = httpProxy.createProxyServer({ xfwd: false, changeOrigin: false, ws: false, prependPath: false });
    this.proxy.on('proxyReq', (proxyReq, req) => {
      const st = (req as ForwardReq)[STATE];
      proxyReq.once('timeout', () => {
        if (st) st.timedOut = true;
      });
    });
    this.proxy.on('proxyRes', (proxyRes, req) => {
      stripHopByHop(proxyRes.headers);
      // http-proxy copies the (already stripped) request Connection header onto the response,
      // defaulting to keep-alive; state the client's own choice so Node closes when it asked to.
      proxyRes.headers['connection'] = (req as ForwardReq)[STATE]?.keepAlive === false ? 'close' : 'keep-alive';
    });
    this.proxy.on('error', (err, req, res) => this.onProxyError(err, req as ForwardReq, res as ServerResponse));
    this.proxy.on('econnreset', () => {
      // The client went away mid-request: http-proxy aborts the upstream request; the record is
      // written by the response 'close' handler.
    });
  }

  close(): void {
    this.agent.destroy();
    this.proxy.close();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { ctx } = this;
    const started = performance.now();
    const state = connState(req.socket);
    const rec = newAccessRecord('http', Events.HTTP_FORWARD, state.ip, req.method ?? '', req.url ?? '');
    const refuse = (r: Refusal): void => {
      // A connection refused at accept time (limits, ACL) is closed; a per-request refusal keeps
      // the client's keep-alive connection.
      sendRefusal(res, r, state.refusal !== null);
      recordRefusal(ctx, rec, r, started);
    };

    if (state.refusal) return refuse(state.refusal);
    const url = req.url ?? '';
    if (url.startsWith('/') || url === '*') {
      return refuse(
        refusal(400, 'not_proxy_request', Events.NOT_PROXY_REQUEST, 'PCL_ERR_NOT_PROXY_REQUEST', 'this is a forward proxy: send CONNECT host:port or an absolute http:// URL'),
      );
    }
    if (!FORWARDED_METHODS.has(req.method ?? '')) {
      return refuse(refusal(405, 'method_not_allowed', Events.METHOD_NOT_ALLOWED, 'PCL_ERR_METHOD', `method ${req.method} is not forwarded`));
    }
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      // We would have to decode or re-frame codings we do not understand (RFC 9112 §6.1).
      return refuse(refusal(501, 'unsupported_transfer_encoding', Events.BAD_REQUEST, 'PCL_ERR_TRANSFER_ENCODING', 'only chunked transfer-encoding is supported'));
    }
    let target: Target;
    try {
      target = targetFromAbsoluteUrl(url);
    } catch (err) {
      const code = isPortcullisError(err) ? err.code : 'PCL_ERR_BAD_URL';
      return refuse(refusal(400, 'bad_request', Events.BAD_REQUEST, code, 'request-target must be an absolute http:// URL'));
    }
    rec.target = targetLabel(target);

    const routed = await route(ctx.policy, ctx.resolver, target);
    if (isRefused(routed)) {
      rec.rule = routed.rule?.name ?? null;
      return refuse(routed.refused);
    }
    admitRoute(ctx, rec, routed, state);
    if (res.destroyed) return;

    const st: ForwardState = { rec, started, timedOut: false, keepAlive: clientWantsKeepAlive(req) };
    stripHopByHop(req.headers);
    (req as ForwardReq)[STATE] = st;
    // Wire bytes of this exchange (headers included), as deltas of the keep-alive connection's counters.
    const sock = req.socket;
    const read0 = sock.bytesRead;
    const written0 = sock.bytesWritten;
    res.once('close', () => {
      rec.status = res.statusCode;
      rec.bytesUp = sock.bytesRead - read0;
      rec.bytesDown = sock.bytesWritten - written0;
      rec.durationMs = performance.now() - started;
      if (!res.writableFinished && rec.verdict !== 'error') {
        rec.verdict = 'error';
        rec.reason = 'upstream_error';
      }
      recordAccess(ctx, rec);
    });
    const address = routed.addresses[0]!;
    this.proxy.web(req, res, {
      target: { protocol: 'http:', host: address.address, port: target.port },
      agent: this.agent,
      proxyTimeout: ctx.config.timeouts.upstreamResponseMs,
    });
  }

  private onProxyError(err: Error, req: ForwardReq, res: ServerResponse): void {
    const st = req[STATE];
    const timedOut = st?.timedOut === true;
    const r = timedOut
      ? refusal(504, 'upstream_timeout', Events.NETWORK_ERROR, 'PCL_ERR_UPSTREAM_TIMEOUT', 'destination did not answer in time')
      : refusal(502, 'upstream_error', Events.NETWORK_ERROR, 'PCL_ERR_UPSTREAM', `destination failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
    if (st) {
      st.rec.verdict = 'error';
      st.rec.reason = r.reason;
      st.rec.code = r.code;
      st.rec.event = r.event;
    }
    if (res && typeof res.writeHead === 'function') sendRefusal(res, r);
  }
}

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { targetFromAbsoluteUrl, type Target } from '../policy/index.js';
import { Events } from '../log/events.js';
import { Errors, withDetail } from '../errors/catalogue.js';
import { connState, newAccessRecord, recordAccess, recordOutcome, recordRefusal, type ProxyContext } from './context.js';
import { sendRefusal, upstreamRefusal, type Refusal } from './refusal.js';
import { routeRequest } from './route.js';
import { identify, isRefusal, realmOf } from './identify.js';
import { identityLabel } from '../policy/index.js';

/** Methods forwarded as plain HTTP. TRACE (reflects credentials) and anything exotic get 405. */
const FORWARDED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

/**
 * RFC 9110 §7.6.1 hop-by-hop headers, the proxy's own credentials, and the framing headers the
 * upstream client sets itself (transfer-encoding; expect is answered by our own server).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
  'transfer-encoding',
  'expect',
]);

type HeaderMap = Record<string, string | string[] | undefined>;

/** Copy without hop-by-hop headers, nor the ones the Connection header names. */
function endToEnd(headers: IncomingHttpHeaders | HeaderMap): HeaderMap {
  const out: HeaderMap = {};
  const named = headers['connection'];
  const listed =
    typeof named === 'string' && named.includes(',')
      ? new Set(
          named
            .toLowerCase()
            .split(',')
            .map((s) => s.trim()),
        )
      : typeof named === 'string'
        ? new Set([named.trim().toLowerCase()])
        : null;
  for (const key in headers) {
    if (HOP_BY_HOP.has(key)) continue;
    // A client may not strip framing or the Host header by naming them in Connection.
    if (listed?.has(key) && key !== 'host' && key !== 'content-length') continue;
    out[key] = headers[key];
  }
  return out;
}

/**
 * The Host sent upstream: the request-target's authority as the policy saw it (normalised: lower
 * case, no root dot), the port only when it is not 80. RFC 9112 §3.2.2: a proxy replaces the
 * received Host of an absolute-form request, so a foreign Host (domain fronting) never leaves.
 */
export function hostHeader(t: Target): string {
  const host = t.kind === 'ipv6' ? `[${t.host}]` : t.host;
  return t.port === 80 ? host : `${host}:${t.port}`;
}

/** More than one Host field line: RFC 9112 §3.2 says answer 400, whatever the values. */
function hasDuplicateHost(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name?.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}

/** The request-target's path and query: everything after `http://authority`, minus a fragment. */
function originForm(url: string): string {
  let i = url.indexOf('//') + 2;
  while (i < url.length && url[i] !== '/' && url[i] !== '?' && url[i] !== '#') i++;
  const hash = url.indexOf('#', i);
  const rest = hash < 0 ? url.slice(i) : url.slice(i, hash);
  return rest === '' ? '/' : rest[0] === '?' ? '/' + rest : rest;
}

/**
 * One forwarded exchange as an undici dispatch handler: the response head and body go straight
 * into the client's ServerResponse, with the client's backpressure pausing the upstream. Measured
 * against `pool.request()` + piping its body stream, this skips a Readable, a promise and the
 * pipe per request (see docs/benchmarks.md). `done` runs once.
 */
class ForwardExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private headSent = false;
  private settled = false;

  constructor(
    private readonly res: ServerResponse,
    /** err before the head: answer with a refusal; err after it: the connection is cut. */
    private readonly done: (err: Error | null, headSent: boolean, upstreamFault: boolean) => void,
  ) {
    res.once('close', this.onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200 || this.settled) return; // 1xx: the client's own server answers 100-continue
    this.headSent = true;
    this.res.writeHead(statusCode, endToEnd(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.res.end();
    this.settle(null, false);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.settled) return;
    // Mid-body failure: the head is out, so all we can do is cut the connection.
    if (this.headSent) this.res.destroy();
    this.settle(err, true);
  }

  private readonly onClientClose = (): void => {
    if (this.settled) return;
    // Closed before everything was written: stop the upstream side too.
    if (!this.res.writableFinished) {
      this.controller?.abort(new Error('client closed the connection'));
      this.settle(new Error('client closed the connection'), false);
    }
  };

  private settle(err: Error | null, upstreamFault: boolean): void {
    this.settled = true;
    this.done(err, this.headSent, upstreamFault);
  }
}

/**
 * Plain-HTTP forwarding (absolute-form `GET http://host/path`) through the route's dialer: its
 * undici dispatcher keeps the keep-alive pools (see src/dial/dialer.ts), so a parent proxy can be
 * a ProxyAgent and interceptors compose onto it. (http-proxy, the first choice, cost about twice
 * the CPU per request: see docs/benchmarks.md.)
 */
export class HttpForwarder {
  constructor(private readonly ctx: ProxyContext) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { ctx } = this;
    const started = performance.now();
    const state = connState(req.socket);
    const rec = newAccessRecord('http', Events.HTTP_FORWARD, state.ip, req.method ?? '', req.url ?? '');
    const refuse = (r: Refusal): void => {
      // Every plain-HTTP response closes its connection (src/proxy/server.ts); the header says so.
      sendRefusal(res, r, true, realmOf(ctx));
      recordRefusal(ctx, rec, r, started);
    };

    if (state.refusal) {
      if (state.identity) rec.identity = identityLabel(state.identity) ?? '';
      return refuse(state.refusal);
    }
    // The request line was checked by the front door (src/proxy/front-door.ts): a connection carries one request.
    const url = req.url ?? '';
    if (hasDuplicateHost(req.rawHeaders)) return refuse(Errors.DUPLICATE_HOST);
    if (url.startsWith('/') || url === '*') {
      return refuse(Errors.NOT_PROXY_REQUEST);
    }
    const method = req.method ?? '';
    if (!FORWARDED_METHODS.has(method)) {
      return refuse(withDetail(Errors.METHOD, method));
    }
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      // We would have to decode or re-frame codings we do not understand (RFC 9112 §6.1).
      return refuse(Errors.TRANSFER_ENCODING);
    }
    let identity = identify(ctx, state, rec, req.headers['proxy-authorization']);
    if (identity instanceof Promise) identity = await identity;
    if (isRefusal(identity)) return refuse(identity);
    if (res.destroyed) return recordOutcome(ctx, rec, Errors.CLIENT_CLOSED, started);
    const r = await routeRequest(ctx, rec, state, () => targetFromAbsoluteUrl(url), Errors.BAD_URL, refuse, identity);
    if (r === null) return;
    const { routed, target } = r;
    if (res.destroyed) return;

    // Wire bytes of this exchange (headers included), as deltas of the keep-alive connection's counters.
    const sock = req.socket;
    const read0 = sock.bytesRead;
    const written0 = sock.bytesWritten;
    const finish = (): void => {
      rec.status = res.statusCode;
      rec.bytesUp = sock.bytesRead - read0;
      rec.bytesDown = sock.bytesWritten - written0;
      rec.durationMs = performance.now() - started;
      recordAccess(ctx, rec);
    };

    const hasBody = te !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    const headers = endToEnd(req.headers);
    headers['host'] = hostHeader(target);
    const exchange = new ForwardExchange(res, (err, headSent, upstreamFault) => {
      if (err && !headSent) {
        if (upstreamFault && !res.destroyed && !req.destroyed) return refuse(upstreamRefusal(err));
        // The client hung up before the destination answered: not the destination's fault.
        return recordOutcome(ctx, rec, Errors.CLIENT_CLOSED, started);
      }
      if (err) {
        // Mid-body: the status already sent stays on the record (finish below).
        const o = upstreamFault ? Errors.UPSTREAM_BODY : Errors.CLIENT_CLOSED;
        rec.verdict = 'error';
        rec.reason = o.reason;
        rec.code = o.code;
      }
      finish();
    });
    routed.dialer.dispatcher.dispatch(
      {
        origin: routed.dialer.origin(routed),
        method,
        path: originForm(url),
        headers,
        body: hasBody ? req : null,
      },
      exchange,
    );
  }
}

/**
 * How to reach a destination the policy admitted and DNS vetting narrowed to a list of addresses.
 * The proxy picks a Dialer after the decision (direct, or a relay proxy: CONNECT-over-CONNECT,
 * src/dial/relay.ts) and both CONNECT tunnels and plain HTTP go through it, so a new way of reaching the
 * destination plugs in here without touching the tunnel or forwarding code.
 */
import type { Socket } from 'node:net';
import { Agent, Pool, type Dispatcher } from 'undici';
import { hostPort } from '../util/host-port.js';
import { dialFirst } from './connect.js';
import { toResolved, type ResolvedAddress } from './resolver.js';

/** A destination as the client named it, with the addresses it may be dialled at (vetted, in order). */
export interface DialTarget {
  readonly host: string;
  readonly port: number;
  readonly addresses: readonly ResolvedAddress[];
}

export interface Dialer {
  /** 'direct', 'relay', ...: for logs and metrics. */
  readonly kind: string;
  /** A connected stream to the destination (CONNECT tunnels); rejects with a PortcullisError. */
  connect(target: DialTarget): Promise<Socket>;
  /** Where plain-HTTP requests go: undici interceptors compose onto it. */
  readonly dispatcher: Dispatcher;
  /** The `origin` to dispatch a plain-HTTP request for `target` with. */
  origin(target: DialTarget): string;
  /** The relay proxy (host:port) a socket from connect() goes through, or null (direct). */
  via?(socket: Socket): string | null;
  /** Stop taking requests; pooled connections close once idle. */
  close(): Promise<void>;
  /** Close everything now. */
  destroy(): Promise<void>;
}

export interface DirectDialerOptions {
  /** TCP connect timeout per address. */
  connectMs: number;
  /** Plain HTTP: wait this long for the response head. */
  headersMs: number;
  /** Plain HTTP: the longest gap between body chunks. */
  bodyMs: number;
}

/** Origins whose vetted address lists are remembered; beyond this the oldest goes. */
const MAX_ORIGINS = 1024;
/** As undici's own connector: notice a dead peer on an idle pooled connection. */
const KEEPALIVE_PROBE_MS = 60_000;

/**
 * Connects straight to the vetted addresses, trying each in order with the full connect timeout.
 * Plain HTTP: an undici Agent keeps one keep-alive Pool per first vetted address:port (a name that
 * resolves elsewhere later gets another pool, so a pooled connection is only reused for an address
 * that was vetted for it); a new pooled connection dials through the same code as a tunnel and
 * falls through to the next vetted address when one refuses.
 */
export class DirectDialer implements Dialer {
  readonly kind = 'direct';
  readonly dispatcher: Agent;
  readonly #opts: DirectDialerOptions;
  // origin → the address list last vetted for it; read when a pool opens a connection.
  readonly #vetted = new Map<string, readonly ResolvedAddress[]>();

  constructor(opts: DirectDialerOptions) {
    this.#opts = opts;
    this.dispatcher = new Agent({ factory: (origin) => this.#pool(String(origin)) });
  }

  async connect(target: DialTarget): Promise<Socket> {
    const { socket } = await dialFirst(target.addresses, target.port, { timeoutMs: this.#opts.connectMs });
    return socket;
  }

  origin(target: DialTarget): string {
    const first = target.addresses[0];
    // No address cannot come out of vetting; dialFirst reports it as a connect error.
    const origin = `http://${hostPort(first === undefined ? '0.0.0.0' : first.address, target.port)}`;
    const vetted = this.#vetted;
    if (vetted.get(origin) !== target.addresses) {
      vetted.delete(origin);
      vetted.set(origin, target.addresses);
      if (vetted.size > MAX_ORIGINS) {
        const oldest = vetted.keys().next();
        if (oldest.done !== true) vetted.delete(oldest.value);
      }
    }
    return origin;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  async destroy(): Promise<void> {
    await this.dispatcher.destroy();
  }

  #pool(origin: string): Pool {
    const { connectMs, headersMs, bodyMs } = this.#opts;
    return new Pool(origin, {
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: headersMs,
      bodyTimeout: bodyMs,
      connect: (params, callback) => {
        const port = Number(params.port) || 80;
        // Evicted (over MAX_ORIGINS busy origins): the origin's own address was vetted.
        const addresses = this.#vetted.get(origin) ?? [toResolved(params.hostname)];
        dialFirst(addresses, port, { timeoutMs: connectMs, allowHalfOpen: false }).then(
          ({ socket }) => {
            socket.setKeepAlive(true, KEEPALIVE_PROBE_MS);
            callback(null, socket);
          },
          (err: Error) => callback(err, null),
        );
      },
    });
  }
}

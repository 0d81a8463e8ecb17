import type { Socket } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { nativeRelayCheck, type SemanticCheck } from '../config/index.js';
import { ADDON_CANDIDATES } from './probe.js';
import { loadAddon } from '../util/addon.js';

/**
 * How a natively relayed tunnel ended, in the addon's numbering. `closed` = we asked (destroy,
 * drain, lifetime, stopNativeRelay); `out_of_memory` and `relay_error` are the relay's own faults,
 * not either peer's. The addon is the definition (RELAY_CAUSES in native/relay.c, exported as
 * `causes`): this copy only gives TypeScript the names, and an addon whose list differs is refused
 * at load (test/relay/native.test.ts fails on it).
 */
export const RELAY_END_CAUSES = ['done', 'client_error', 'upstream_error', 'idle_timeout', 'closed', 'out_of_memory', 'relay_error'] as const;
export type RelayEndCause = (typeof RELAY_END_CAUSES)[number];

export interface RelayEnd {
  cause: RelayEndCause;
  bytesUp: number;
  bytesDown: number;
}

export interface RelayedTunnel {
  /** Client→upstream and upstream→client bytes so far (the bytes handed over included). */
  readonly bytesUp: number;
  readonly bytesDown: number;
}

/**
 * Why a tunnel is relayed in JavaScript although the native relay was asked for: it is not
 * available here, Node already held bytes of the tunnel, every slot under the limit was taken
 * (PORTCULLIS_RELAY_SLOTS), or the relay could not allocate what a hand-over needs; tls_client:
 * the client came in on the TLS proxy listener, whose bytes only Node's TLS layer can decrypt (the
 * native relay moves bytes between plain descriptors), decided by the proxy, never by the relay.
 */
export type RelayFallback = 'unavailable' | 'buffered' | 'slots_full' | 'no_memory' | 'tls_client';

/** What /metrics shows of the relay thread (the addon's stats(), read at scrape time). */
export interface RelayStats {
  /** Tunnels the relay thread carries now. */
  tunnels: number;
  /** Slots taken: from the hand-over until JavaScript has heard the tunnel's end. */
  slotsInUse: number;
  /** The most slots (tunnels) the relay takes in this process. */
  slotLimit: number;
  /** Bytes read from one side that the other side has not accepted yet (its socket buffer is full). */
  pendingBytes: number;
  /** Directions holding such bytes. */
  blockedDirections: number;
  /** Wake-ups of the relay thread's event loop since the process started. */
  loopIterations: number;
}

export interface RelayOptions {
  /** Close the tunnel after this long with no byte either way; 0 = never. */
  idleMs: number;
  /** Written to the client first (the 200 answer; not counted as payload). */
  toClient: Buffer;
  /** Written to the upstream first (bytes that came with the CONNECT). */
  toUpstream: Buffer;
}

interface Addon {
  /** Starts the relay thread if it is not running; onDone is kept from the first call. */
  init(onDone: (slot: number, gen: number, cause: number, up: number, down: number) => void, slotLimit: number): Float64Array;
  /** slot * 2^32 + gen, or START_NO_SLOT / START_NO_MEMORY. */
  start(clientFd: number, upstreamFd: number, idleMs: number, toClient: Buffer, toUpstream: Buffer): number;
  stats(): RelayStats;
  close(slot: number, gen: number): void;
  ref(on: boolean): void;
  /** Ends every tunnel (each reported as `closed`) and stops the thread; init() starts a new one. */
  stop(): void;
  readonly causes: readonly string[];
}

/** The parts of libuv's stream handle behind net.Socket that a hand-over needs. */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

type DestroyFn = (this: Destroyable, err: Error | null, cb: (err?: Error | null) => void) => void;
/** net.Socket with the internals @types/node leaves out; _handle is optional, so every Socket is one. */
type Destroyable = Socket & { _handle?: StreamHandle | null; _destroy: DestroyFn };

const SLOT = 4294967296;
/** start()'s refusals (START_NO_SLOT, START_NO_MEMORY in native/relay.c). */
const START_NO_SLOT = -1;
/** The addon's own ceiling (MAX_SLOTS in native/relay.c). */
export const MAX_RELAY_SLOTS = 65536;

/**
 * PORTCULLIS_RELAY_SLOTS: the most tunnels the native relay takes per process (default and
 * ceiling 65536); tunnels past it are relayed in JavaScript and labelled `slots_full`. For
 * operators who want the relay's memory bounded, and for the test of the fallback. A value that
 * is not an integer in range makes the native relay unavailable, with the reason, rather than
 * guess: relay: auto then warns at start, relay: native refuses to start.
 */
function slotLimitFromEnv(value: string | undefined): { limit: number; error: string } {
  if (value === undefined || value === '') return { limit: MAX_RELAY_SLOTS, error: '' };
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (n >= 1 && n <= MAX_RELAY_SLOTS) return { limit: n, error: '' };
  return { limit: MAX_RELAY_SLOTS, error: `PORTCULLIS_RELAY_SLOTS=${JSON.stringify(value)} is not an integer from 1 to ${MAX_RELAY_SLOTS}` };
}
const slots = slotLimitFromEnv(process.env.PORTCULLIS_RELAY_SLOTS);

/** The parts of the addon checked before it is trusted. */
function isAddon(m: unknown): m is Addon {
  return typeof m === 'object' && m !== null && 'causes' in m && Array.isArray(m.causes) && 'start' in m && typeof m.start === 'function';
}

let addon: Addon | null = null;
/** The file the addon was loaded from (the prebuilt one, or this machine's build). */
let addonPath = '';
let loadError = '';
if (!isMainThread) {
  // The relay's state is per process and belongs to the main thread (where the proxy runs).
  loadError = 'not on the main thread';
} else if (slots.error) {
  loadError = slots.error;
} else if (process.platform === 'linux') {
  const loaded = loadAddon(ADDON_CANDIDATES, (module): Addon | string => {
    const causes = isAddon(module) ? module.causes.join(',') : 'none';
    // A stale build would report ends under the wrong names: refuse it rather than mislabel them.
    if (isAddon(module) && causes === RELAY_END_CAUSES.join(',')) return module;
    return `addon end causes (${causes}) differ from src/relay/native.ts: rebuild with npm run build`;
  });
  if (loaded.addon) {
    addon = loaded.addon;
    addonPath = loaded.path;
  } else loadError = loaded.error;
} else {
  loadError = `not built for ${process.platform}`;
}

/** Whether tunnels can be relayed natively here, and if not, why (for the start-up log). */
export function nativeRelayStatus(): { available: boolean; reason: string } {
  return addon ? { available: true, reason: '' } : { available: false, reason: loadError || 'not built (npm run build)' };
}

/** The file the native relay was loaded from ('' when it was not): the prebuilt addon or this machine's build. */
export function nativeRelayFile(): string {
  return addonPath;
}

class Relayed implements RelayedTunnel {
  ended = false;
  final: RelayEnd | null = null;
  readonly deferred: Array<() => void> = [];

  constructor(
    readonly slot: number,
    readonly gen: number,
    readonly onEnd: (end: RelayEnd) => void,
  ) {}

  get bytesUp(): number {
    return this.final ? this.final.bytesUp : (counters?.[this.slot * 2] ?? 0);
  }

  get bytesDown(): number {
    return this.final ? this.final.bytesDown : (counters?.[this.slot * 2 + 1] ?? 0);
  }
}

let counters: Float64Array | null = null;
let running = false;
const live = new Map<number, Relayed>();
/** Called with every tunnel whose end was delivered (stopNativeRelay waits through these). */
const endWatchers = new Set<(t: Relayed) => void>();

function onDone(slot: number, gen: number, cause: number, up: number, down: number): void {
  const t = live.get(slot);
  if (!t || t.gen !== gen) return;
  live.delete(slot);
  if (live.size === 0) addon?.ref(false);
  t.ended = true;
  t.final = { cause: RELAY_END_CAUSES[cause] ?? 'relay_error', bytesUp: up, bytesDown: down };
  // Sockets destroyed while the relay still owned their descriptors close now.
  for (const fn of t.deferred.splice(0)) fn();
  for (const fn of endWatchers) fn(t);
  t.onEnd(t.final);
}

function hasFd(h: StreamHandle): h is StreamHandle & { fd: number } {
  return typeof h.fd === 'number';
}

function usableHandle(s: Socket): (StreamHandle & { fd: number }) | null {
  const d: Destroyable = s;
  const h = d._handle;
  if (!h || !hasFd(h) || h.fd < 0 || typeof h.readStop !== 'function') return null;
  return h;
}

/** The relay thread's numbers for /metrics; null where the native relay is not available. */
export function nativeRelayStats(): RelayStats | null {
  if (!addon) return null;
  const stats = addon.stats();
  // The addon learns its limit with the first tunnel (init); until then, say what that will be.
  if (!running) stats.slotLimit = slots.limit;
  return stats;
}

/**
 * Hand an established tunnel's two sockets to the native relay. Returns why not (and leaves both
 * sockets untouched) when that is not possible: no addon, bytes already buffered in Node or still
 * queued for writing, no free slot, no memory; the caller then relays in JavaScript.
 *
 * After a hand-over the sockets stay open but silent in JavaScript: libuv no longer reads them,
 * and destroying either one first asks the relay to let go of both descriptors, so a descriptor
 * is never closed (and its number reused) while the relay thread still uses it. `onEnd` runs once,
 * on the main thread, when the relay is done with them; the caller then destroys both sockets.
 */
export function relayTunnel(client: Socket, upstream: Socket, opts: RelayOptions, onEnd: (end: RelayEnd) => void): RelayedTunnel | RelayFallback {
  if (!addon) return 'unavailable';
  if (client.readableLength > 0 || upstream.readableLength > 0 || client.writableLength > 0 || upstream.writableLength > 0) return 'buffered';
  const ch = usableHandle(client);
  const uh = usableHandle(upstream);
  // A socket without a usable descriptor is one Node still owns in full (a closing one): as good as buffered.
  if (!ch || !uh || client.destroyed || upstream.destroyed) return 'buffered';
  if (!running) {
    counters = addon.init(onDone, slots.limit);
    running = true;
  }
  // No libuv read can happen between start() and readStop(): both run in this synchronous call.
  const id = addon.start(ch.fd, uh.fd, opts.idleMs, opts.toClient, opts.toUpstream);
  if (id < 0) return id === START_NO_SLOT ? 'slots_full' : 'no_memory';
  ch.readStop?.();
  uh.readStop?.();
  // net.Socket restarts reading only when it believes the handle is not reading: keep it believing.
  ch.reading = true;
  uh.reading = true;
  const t = new Relayed(Math.floor(id / SLOT), id % SLOT, onEnd);
  if (live.size === 0) addon.ref(true);
  live.set(t.slot, t);
  const sockets: Destroyable[] = [client, upstream];
  for (const s of sockets) {
    const own = s._destroy.bind(s);
    s._destroy = function (this: Destroyable, err, cb) {
      if (t.ended) return own(err, cb);
      t.deferred.push(() => own(err, cb));
      addon?.close(t.slot, t.gen);
    };
  }
  return t;
}

/**
 * Stop the relay thread: every tunnel it carries ends (its onEnd runs with cause `closed`, so its
 * owner closes both sockets). Resolves once all of them were delivered. The next relayTunnel()
 * starts a fresh thread. For an orderly shutdown of the process's last gateway, and for tests.
 */
export function stopNativeRelay(): Promise<void> {
  if (!addon || !running) return Promise.resolve();
  // The tunnels of this thread; one started after the stop belongs to the next thread.
  const waiting = new Set(live.values());
  addon.stop();
  running = false;
  if (waiting.size === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const watch = (t: Relayed): void => {
      waiting.delete(t);
      if (waiting.size > 0) return;
      endWatchers.delete(watch);
      resolve();
    };
    endWatchers.add(watch);
  });
}

/** Config check: `proxy.relay: native` with what loading the addon found here. */
export const relayConfigCheck: SemanticCheck = nativeRelayCheck(nativeRelayStatus());

/** The relay tunnels get under this setting, and the warning to log when auto had to fall back. */
export function relayInUse(mode: 'auto' | 'native' | 'js'): { relay: 'native' | 'js'; warning: string | null } {
  if (mode === 'js') return { relay: 'js', warning: null };
  if (addon) return { relay: 'native', warning: null };
  return { relay: 'js', warning: `native tunnel relay not available (${nativeRelayStatus().reason}): relaying in JavaScript, which costs more CPU per byte` };
}

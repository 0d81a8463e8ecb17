import cluster, { type Worker } from 'node:cluster';
import type { Counter } from 'prom-client';
import type { PortcullisConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { compilePolicy, describePolicy, type Policy } from '../policy/index.js';
import type { BoundAddress, LimitShare } from '../proxy/index.js';
import { announceListening } from '../gateway/proxy-service.js';
import { ServiceStartError } from '../gateway/errors.js';
import type { Readiness, Service } from '../gateway/service.js';
import { isMessage, type ToPrimary, type ToWorker } from './messages.js';
import { limitShare, rebalancedShares, shareChanges } from './limit-share.js';

/** A worker that dies this often within the window is restarted with a pause, not in a tight loop. */
const CRASH_WINDOW_MS = 30_000;
const CRASH_BURST = 5;
const CRASH_PAUSE_MS = 5_000;
/** Past the drain deadline, workers get this long to exit before SIGKILL. */
const DRAIN_GRACE_MS = 5_000;
/** How often the supervisor moves connection-limit shares towards the workers' load. */
const REBALANCE_MS = 1_000;
/** Rebalance rounds remembered while their workers have not all acknowledged (a stuck worker must not grow the map). */
const MAX_UNAPPLIED_ROUNDS = 16;

/** A rebalance sent, waiting for the acknowledgement of every worker whose share it changed. */
interface UnappliedRound {
  /** Worker ids that have not said portcullis:share-applied yet. */
  waiting: Set<number>;
  /** maxConnections each worker enforces once the round is applied (the rebalance's worker order). */
  shares: number[];
  sentAt: number;
}

export interface WorkerPoolOptions {
  config: PortcullisConfig;
  source: string;
  count: number;
  logger: Logger;
  restarts: Counter;
  /** A worker could not start after the pool had started (see RunningGateway.fail). */
  onLateFailure: (err: ServiceStartError) => void;
}

type Msg<T extends ToPrimary['type']> = Extract<ToPrimary, { type: T }>;

/**
 * The proxy in cluster mode, as one Service in the supervisor: forks the data-plane workers and
 * hands each its configuration over IPC, replaces workers that crash, passes reloads on, and
 * drains them. Started when every worker listens; a worker that cannot start (its proxy listener
 * failed to bind) fails the pool instead of being replaced forever.
 */
export class WorkerPool implements Service {
  readonly name = 'proxy';
  private config: PortcullisConfig;
  /** Compiled here too, to refuse a bad reload once and to describe the allowlist in force. */
  private policy: Policy;
  private readonly alive = new Set<Worker>();
  private readonly listening = new Map<number, BoundAddress[]>();
  /** Workers that have their configuration: only these get reloads (the rest ask for the current one). */
  private readonly configured = new Set<number>();
  /** Worker id → its place 0..count-1, which fixes its share of the connection limits; a replacement takes the dead worker's place. */
  private readonly slots = new Map<number, number>();
  /** Place → the total share last sent by a rebalance, so a replacement worker starts where its place was (not above it). */
  private readonly rebalanced = new Map<number, number>();
  private readonly crashes: number[] = [];
  private draining = false;
  private failure: ServiceStartError | null = null;
  private starting: { resolve: () => void; reject: (err: ServiceStartError) => void } | null = null;
  private readonly exitWaiters: Array<() => void> = [];
  private nextQueryId = 1;
  private readonly pendingClientQueries = new Map<number, (ips: string[]) => void>();
  private readonly pendingLoadQueries = new Map<number, (load: { admitted: number; enforced: number } | null) => void>();
  private rebalanceTimer: NodeJS.Timeout | null = null;
  private rebalancing = false;
  /** Bumped on every reload: a rebalance computed before it must not undo the fresh shares. */
  private configEpoch = 0;
  /** Numbers the rebalances that change something; the workers echo it when they apply their share. */
  private shareRound = 0;
  private readonly unapplied = new Map<number, UnappliedRound>();

  constructor(private readonly opts: WorkerPoolOptions) {
    this.config = opts.config;
    this.policy = compilePolicy(opts.config);
  }

  /** The allowlist in force, as describePolicy lines. */
  allowlist(): string[] {
    return describePolicy(this.policy);
  }

  start(): Promise<void> {
    // Must be set before the first fork. Round-robin: the supervisor accepts and hands out.
    cluster.schedulingPolicy = this.config.proxy.balance === 'kernel' ? cluster.SCHED_NONE : cluster.SCHED_RR;
    cluster.on('message', this.onMessage);
    cluster.on('exit', this.onExit);
    this.rebalanceTimer = setInterval(() => void this.rebalance(), REBALANCE_MS);
    this.rebalanceTimer.unref();
    return new Promise<void>((resolve, reject) => {
      this.starting = { resolve, reject };
      for (let i = 0; i < this.opts.count; i++) this.fork();
    });
  }

  reload(next: PortcullisConfig): void {
    this.policy = compilePolicy(next); // refuse here, once, rather than in every worker
    // A new limit: even shares again, then rebalanced from there. The same limit keeps the shares
    // as they are (resetting them all at once could add up to more than the limit for a moment).
    if (next.proxy.limits.maxConnections !== this.config.proxy.limits.maxConnections) this.rebalanced.clear();
    this.config = next;
    this.configEpoch++;
    for (const w of this.alive) if (this.configured.has(w.id)) this.send(w, { type: 'portcullis:reload', config: next, share: this.shareOf(w) });
  }

  async drain(deadlineMs: number): Promise<void> {
    this.draining = true; // no replacements from now on
    this.stopRebalancing();
    const exited = this.whenAllExited();
    this.broadcast({ type: 'portcullis:drain' });
    const hardStop = setTimeout(() => this.killAll(), deadlineMs + DRAIN_GRACE_MS);
    await exited;
    clearTimeout(hardStop);
  }

  /**
   * A SIGTERM before every worker listens: the pool is not a started service yet, so the gateway's
   * drain skips it; without this the supervisor exited under its starting workers, whose first
   * IPC send then failed with an unhandled EPIPE. Its start() stays pending: the process exits.
   */
  async drainIfStarting(deadlineMs: number): Promise<void> {
    if (this.starting && !this.draining) await this.drain(deadlineMs);
  }

  readiness(): Readiness {
    if (this.draining) return { ready: false, reasons: ['draining'] };
    if (this.listening.size === 0) return { ready: false, reasons: ['no data-plane worker is listening'] };
    return { ready: true, reasons: [] };
  }

  killAll(): void {
    for (const w of this.alive) w.process.kill('SIGKILL');
  }

  get counts(): { total: number; listening: number } {
    return { total: this.alive.size, listening: this.listening.size };
  }

  workers(): Array<{ id: number; pid: number | undefined; listening: boolean }> {
    return [...this.alive].map((w) => ({ id: w.id, pid: w.process.pid, listening: this.listening.has(w.id) }));
  }

  /** Distinct client IPs across workers: a per-worker count summed would count a client twice. */
  async connectedClients(windowMs: number): Promise<number> {
    const union = new Set<string>();
    const ask = (w: Worker): Promise<void> =>
      new Promise<void>((resolve) => {
        const id = this.nextQueryId++;
        const done = (ips: string[] = []): void => {
          clearTimeout(timer);
          this.pendingClientQueries.delete(id);
          for (const ip of ips) union.add(ip);
          resolve();
        };
        const timer = setTimeout(done, 1_000);
        this.pendingClientQueries.set(id, done);
        this.send(w, { type: 'portcullis:clients?', id, windowMs });
      });
    await Promise.all([...this.alive].filter((w) => w.isConnected()).map(ask));
    return union.size;
  }

  private fork(): void {
    const w = cluster.fork();
    const taken = new Set(this.slots.values());
    let slot = 0;
    while (taken.has(slot)) slot++;
    this.slots.set(w.id, slot);
    this.alive.add(w);
    w.on('error', (err) => this.opts.logger.warn({ event: Events.INTERNAL_ERROR, err, worker: w.id }, 'worker IPC error'));
  }

  private stopRebalancing(): void {
    if (this.rebalanceTimer) clearInterval(this.rebalanceTimer);
    this.rebalanceTimer = null;
  }

  private askLoad(w: Worker): Promise<{ admitted: number; enforced: number } | null> {
    return new Promise((resolve) => {
      const id = this.nextQueryId++;
      const done = (load: { admitted: number; enforced: number } | null): void => {
        clearTimeout(timer);
        this.pendingLoadQueries.delete(id);
        resolve(load);
      };
      const timer = setTimeout(() => done(null), 1_000);
      this.pendingLoadQueries.set(id, done);
      this.send(w, { type: 'portcullis:load?', id });
    });
  }

  /**
   * Move the workers' shares of maxConnections towards their load (limit-share.ts): a worker the
   * kernel hands more connections gets the room an idle one does not use, and between them they
   * never enforce more than the limit. Only with every worker up (a new one starts with its even
   * share) and when the limit leaves room to move.
   */
  private async rebalance(): Promise<void> {
    if (this.rebalancing || this.draining || this.failure) return;
    const total = this.config.proxy.limits.maxConnections;
    const workers = [...this.alive].filter((w) => this.listening.has(w.id) && this.configured.has(w.id) && w.isConnected());
    if (workers.length !== this.opts.count || workers.length < 2 || total < 2 * workers.length) return;
    this.rebalancing = true;
    const epoch = this.configEpoch;
    try {
      const loads = await Promise.all(workers.map((w) => this.askLoad(w)));
      if (epoch !== this.configEpoch || this.draining) return;
      const admitted: number[] = [];
      const enforced: number[] = [];
      for (const l of loads) {
        if (l === null) return; // a worker that did not answer keeps everyone's share as it is
        admitted.push(l.admitted);
        enforced.push(l.enforced);
      }
      const changes = shareChanges(total, enforced, rebalancedShares(total, admitted, enforced));
      if (changes.length === 0) return;
      const round = ++this.shareRound;
      const pending: UnappliedRound = { waiting: new Set(), shares: [...enforced], sentAt: Date.now() };
      for (const c of changes) {
        const w = workers[c.index];
        const slot = w ? this.slots.get(w.id) : undefined;
        if (!w || slot === undefined) continue;
        this.rebalanced.set(slot, c.maxConnections);
        pending.shares[c.index] = c.maxConnections;
        pending.waiting.add(w.id);
        this.send(w, { type: 'portcullis:share', share: this.shareOf(w), round });
      }
      this.opts.logger.debug({ event: Events.LIFECYCLE, round, admitted, enforced, changes }, 'connection limit shares rebalanced');
      this.unapplied.set(round, pending);
      for (const old of this.unapplied.keys()) {
        if (this.unapplied.size <= MAX_UNAPPLIED_ROUNDS) break;
        this.unapplied.delete(old);
      }
      if (pending.waiting.size === 0) this.shareApplied(round, null);
    } finally {
      this.rebalancing = false;
    }
  }

  /** This worker's part of the gateway-wide connection limits. */
  private shareOf(w: Worker): LimitShare {
    const slot = this.slots.get(w.id) ?? 0;
    const even = limitShare(this.config.proxy.limits, slot, this.opts.count);
    const moved = this.rebalanced.get(slot);
    return moved === undefined ? even : { ...even, maxConnections: moved };
  }

  /**
   * A worker that is exiting (or whose channel broke) cannot be told anything: the send fails
   * with EPIPE or ERR_IPC_CHANNEL_CLOSED, said here (event 212) rather than as an 'error' event;
   * its exit is handled by onExit.
   */
  private send(w: Worker, msg: ToWorker): void {
    if (!w.isConnected()) return;
    w.send(msg, undefined, {}, (err: Error | null) => {
      if (err) this.opts.logger.debug({ event: Events.WORKER_IPC_SEND, worker: w.id, type: msg.type, err }, 'message to a worker not sent');
    });
  }

  private broadcast(msg: ToWorker, only?: ReadonlySet<number>): void {
    for (const w of this.alive) if (!only || only.has(w.id)) this.send(w, msg);
  }

  private readonly onMessage = (worker: Worker, msg: unknown): void => {
    if (isMessage<Msg<'portcullis:config?'>>(msg, 'portcullis:config?')) {
      // Stopping (a SIGTERM during the start): a worker that asks now, and may have missed the
      // drain broadcast, stops instead of starting.
      if (this.draining) return this.send(worker, { type: 'portcullis:drain' });
      // Always the running configuration, so a worker replacing a dead one after a reload matches its siblings.
      this.configured.add(worker.id);
      this.send(worker, { type: 'portcullis:config', config: this.config, share: this.shareOf(worker) });
    } else if (isMessage<Msg<'portcullis:listening'>>(msg, 'portcullis:listening')) {
      this.onListening(worker, msg.addresses);
    } else if (isMessage<Msg<'portcullis:start-failed'>>(msg, 'portcullis:start-failed')) {
      this.onStartFailed(new ServiceStartError(msg.configKey, msg.cause));
    } else if (isMessage<Msg<'portcullis:clients'>>(msg, 'portcullis:clients')) {
      this.pendingClientQueries.get(msg.id)?.(msg.ips);
    } else if (isMessage<Msg<'portcullis:load'>>(msg, 'portcullis:load')) {
      this.pendingLoadQueries.get(msg.id)?.({ admitted: msg.admitted, enforced: msg.enforced });
    } else if (isMessage<Msg<'portcullis:share-applied'>>(msg, 'portcullis:share-applied')) {
      this.shareApplied(msg.round, worker.id);
    }
  };

  /**
   * A worker enforces the share of rebalance `round` (null: none left to hear from). When the
   * last one has, event 211 says so: from then on the gateway enforces exactly those shares.
   */
  private shareApplied(round: number, workerId: number | null): void {
    const pending = this.unapplied.get(round);
    if (!pending) return;
    if (workerId !== null) pending.waiting.delete(workerId);
    if (pending.waiting.size > 0) return;
    this.unapplied.delete(round);
    this.opts.logger.debug(
      { event: Events.LIMIT_SHARES_APPLIED, round, shares: pending.shares, ms: Date.now() - pending.sentAt },
      'connection limit shares applied by every worker',
    );
  }

  private onListening(worker: Worker, addresses: BoundAddress[]): void {
    this.listening.set(worker.id, addresses);
    const { logger } = this.opts;
    logger.info({ event: Events.LIFECYCLE, worker: worker.id, pid: worker.process.pid }, 'worker listening');
    if (this.starting && this.listening.size === this.opts.count) {
      const { config } = this;
      announceListening(logger, config, {
        listen: addresses,
        workers: this.opts.count,
        balance: config.proxy.balance,
        config: this.opts.source,
        allow: this.allowlist(),
      });
      this.starting.resolve();
      this.starting = null;
    }
  }

  /** Never replace a worker that could not bind: the next one would fail the same way, forever. */
  private onStartFailed(err: ServiceStartError): void {
    if (this.failure || this.draining) return;
    this.failure = err;
    const starting = this.starting;
    this.starting = null;
    if (!starting) {
      this.opts.onLateFailure(err);
      return;
    }
    // start() must leave nothing running when it fails: stop the siblings, then reject.
    this.draining = true;
    this.stopRebalancing();
    const exited = this.whenAllExited();
    this.broadcast({ type: 'portcullis:drain' });
    const hardStop = setTimeout(() => this.killAll(), DRAIN_GRACE_MS);
    void exited.then(() => {
      clearTimeout(hardStop);
      starting.reject(err);
    });
  }

  private readonly onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    this.alive.delete(worker);
    this.listening.delete(worker.id);
    this.configured.delete(worker.id);
    this.slots.delete(worker.id);
    // A worker that exits will not answer; its replacement starts with its place's share.
    for (const [round, pending] of [...this.unapplied]) if (pending.waiting.delete(worker.id)) this.shareApplied(round, null);
    if (this.alive.size === 0) for (const done of this.exitWaiters.splice(0)) done();
    if (this.draining || this.failure) return;
    this.opts.restarts.inc();
    const now = Date.now();
    this.crashes.push(now);
    while ((this.crashes[0] ?? now) < now - CRASH_WINDOW_MS) this.crashes.shift();
    const pause = this.crashes.length >= CRASH_BURST ? CRASH_PAUSE_MS : 0;
    this.opts.logger.error(
      { event: Events.INTERNAL_ERROR, worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: pause },
      'worker exited unexpectedly: replacing it',
    );
    setTimeout(() => {
      if (!this.draining && !this.failure) this.fork();
    }, pause).unref();
  };

  private whenAllExited(): Promise<void> {
    if (this.alive.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.exitWaiters.push(resolve));
  }
}

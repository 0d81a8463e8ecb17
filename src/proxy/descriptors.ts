import { readFileSync, readdirSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';

/**
 * File descriptors are the one resource a connection flood exhausts before memory or CPU: every
 * client connection holds one, every tunnel or forwarded request a second towards the
 * destination. What libuv does when accept() fails with EMFILE (the "emfile trick", Node 20-24):
 * it closes a spare descriptor it keeps for this, accepts every pending connection and closes it
 * at once (the client sees a reset, JavaScript hears nothing), and opens the spare again; so the
 * listener does not spin. But the connections it did accept use up every descriptor, and their
 * dials then fail with EMFILE: measured with `ulimit -n 256` and 1,000 connections, 0-53 tunnels
 * came up and ~200 clients got a 502 that blamed the destination.
 *
 * So the proxy keeps a budget: it admits at most as many connections as it has descriptors for
 * (two each), with room kept for the polite 503s past it and for what the process opens besides.
 */

/** An admitted connection can hold two descriptors: the client's and the destination's. */
export const FDS_PER_CONNECTION = 2;
/** Kept free for what the process opens besides proxy sockets (admin scrapes, DNS, log files, the spool). */
export const FD_SPARE = 32;
/** At most this many descriptors answer refusals (503 + Retry-After) past the budget; beyond, Node drops at accept. */
export const FD_REFUSAL_RESERVE_MAX = 256;

/** The soft RLIMIT_NOFILE of this process (Linux /proc), or null where unknown or unlimited. */
export function softNofileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || m[1] === undefined) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** Descriptors open in this process now (Linux /proc), or null where unknown. Not for hot paths. */
export function openDescriptorCount(): number | null {
  try {
    // readdir holds one descriptor of its own while it reads: not counted.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

export interface DescriptorBudget {
  /** The soft RLIMIT_NOFILE. */
  readonly nofile: number;
  /** Descriptors open when the listener was bound (libuv, the listener itself, logs). */
  readonly baseline: number;
  /** Descriptors that answer refusals past the budget. */
  readonly refusalReserve: number;
  /** Client connections admitted at most (each may hold FDS_PER_CONNECTION descriptors). */
  readonly connections: number;
}

/** The budget for a process with `nofile` descriptors, `baseline` of them already open. */
export function descriptorBudget(nofile: number, baseline: number): DescriptorBudget {
  const refusalReserve = Math.max(1, Math.min(FD_REFUSAL_RESERVE_MAX, Math.floor(nofile / 8)));
  const connections = Math.max(1, Math.floor((nofile - baseline - FD_SPARE - refusalReserve) / FDS_PER_CONNECTION));
  return { nofile, baseline, refusalReserve, connections };
}

/** The budget of this process now, or null where the limit is unknown (then only the configured limits apply). */
export function currentDescriptorBudget(): DescriptorBudget | null {
  const nofile = softNofileLimit();
  const open = openDescriptorCount();
  return nofile === null || open === null ? null : descriptorBudget(nofile, open);
}

/** Where the shortage showed: a connection refused at the budget, or a dial that got EMFILE/ENFILE. */
export type ShortageStage = 'admit' | 'dial';

/**
 * Logs a descriptor shortage once when it starts (event 112), then at most once per interval with
 * what it cost in between, and once when an interval passes without any (recovered). Per-connection
 * refusals of this kind are counted in metrics, not logged one by one: a flood would write a line
 * per refused connection exactly when the process can least afford it.
 */
export class ShortageLog {
  private counts: Record<ShortageStage, number> = { admit: 0, dial: 0 };
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: () => Logger,
    private readonly details: () => Record<string, unknown>,
    readonly intervalMs = 10_000,
  ) {}

  /** Whether a shortage is being reported (the interval has not passed quietly yet). */
  get active(): boolean {
    return this.timer !== null;
  }

  note(stage: ShortageStage): void {
    if (this.timer === null) {
      this.logger().warn(
        { event: Events.DESCRIPTORS_SHORT, stage, ...this.details() },
        'file descriptors short: refusing connections with 503 until some close (raise LimitNOFILE or lower proxy.limits.maxConnections)',
      );
      this.arm();
      return;
    }
    this.counts[stage]++;
  }

  /** Stop the timer (drain, tests). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    this.counts = { admit: 0, dial: 0 };
    this.timer = setTimeout(this.tick, this.intervalMs);
    this.timer.unref();
  }

  private readonly tick = (): void => {
    const { admit, dial } = this.counts;
    if (admit + dial === 0) {
      this.timer = null;
      this.logger().info({ event: Events.DESCRIPTORS_SHORT, recovered: true, ...this.details() }, 'file descriptors available again');
      return;
    }
    this.logger().warn(
      { event: Events.DESCRIPTORS_SHORT, refusedAtBudget: admit, dialsFailed: dial, intervalMs: this.intervalMs, ...this.details() },
      'file descriptors still short',
    );
    this.arm();
  };
}

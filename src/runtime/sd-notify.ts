import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { Events } from '../log/events.js';
import { addonCandidates, loadAddon, type AddonLoad } from '../util/addon.js';
import { errorMessage } from '../util/errors.js';

/**
 * systemd's readiness protocol (sd_notify(3)) for a unit with Type=notify: READY=1 once every
 * listener is bound, RELOADING=1 / READY=1 around a reload, STOPPING=1 when the drain begins, and
 * WATCHDOG=1 every half of WatchdogSec. Nothing happens unless systemd set NOTIFY_SOCKET.
 *
 * The datagram goes out through native/notify.c (Node's dgram cannot send on an AF_UNIX socket).
 * Without that addon it falls back to the `systemd-notify` program (racy on systemd 252: it may
 * exit before systemd reads its cgroup, so the unit sets NotifyAccess=all), and says so once.
 */

interface NotifyAddon {
  send(path: string, message: string): number;
}

function isNotifyAddon(m: unknown): m is NotifyAddon {
  return typeof m === 'object' && m !== null && 'send' in m && typeof m.send === 'function';
}

/** PORTCULLIS_NOTIFY_ADDON names another build of the addon (or a missing file, to test the fallback). */
function notifyCandidates(env: NodeJS.ProcessEnv): string[] {
  return env.PORTCULLIS_NOTIFY_ADDON ? [env.PORTCULLIS_NOTIFY_ADDON] : addonCandidates('portcullis_notify');
}

function loadNotifyAddon(env: NodeJS.ProcessEnv): AddonLoad<NotifyAddon> {
  return loadAddon(notifyCandidates(env), (m): NotifyAddon | string => (isNotifyAddon(m) ? m : 'not the notify addon (no send())'));
}

/** Whether the notify addon loads here, and from which file (for `portcullis info`). */
export function notifyAddonStatus(env: NodeJS.ProcessEnv = process.env): { available: boolean; reason: string; path: string } {
  const loaded = loadNotifyAddon(env);
  return loaded.addon ? { available: true, reason: '', path: loaded.path } : { available: false, reason: loaded.error, path: '' };
}

const SYSTEMD_NOTIFY_PATHS = ['/usr/bin/systemd-notify', '/bin/systemd-notify'];

/** Sends one notification; calls `fail` with a sentence if it could not (at once, or later for a child process). */
type Sender = (message: string, fail: (why: string) => void) => void;

export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | null = null;
  private warned = false;

  private constructor(
    private readonly send: Sender,
    private readonly logger: Logger,
    /** How often to send WATCHDOG=1 (half of WATCHDOG_USEC), or 0 when systemd watches nothing. */
    readonly watchdogMs: number,
    fallbackWarning: string,
  ) {
    if (fallbackWarning) this.warnOnce(fallbackWarning);
  }

  /**
   * The notifier for this process, or null when systemd did not ask for notifications
   * (NOTIFY_SOCKET unset: started by hand, in a container, by the tests). Removes NOTIFY_SOCKET
   * and the watchdog variables from the environment, so processes started later (workers) do not
   * think systemd is waiting for them.
   */
  static fromEnv(logger: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | null {
    const socket = env.NOTIFY_SOCKET;
    const watchdogMs = watchdogInterval(env.WATCHDOG_USEC, env.WATCHDOG_PID);
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
    if (!socket) return null;
    const loaded = loadNotifyAddon(env);
    if (loaded.addon) {
      const addon = loaded.addon;
      const native: Sender = (message, fail) => {
        const errno = addon.send(socket, message);
        if (errno !== 0) fail(`sending to NOTIFY_SOCKET failed (errno ${errno})`);
      };
      return new SystemdNotifier(native, logger, watchdogMs, '');
    }
    const program = SYSTEMD_NOTIFY_PATHS.find((p) => existsSync(p));
    if (!program) {
      const why = `native notify addon not available (${loaded.error}) and no systemd-notify program: systemd is not told that the gateway is ready`;
      return new SystemdNotifier((_message, fail) => fail(why), logger, watchdogMs, why);
    }
    const viaProgram: Sender = (message, fail) => {
      const child = spawn(program, message.split('\n'), { stdio: 'ignore', env: { ...env, NOTIFY_SOCKET: socket } });
      child.on('error', (err) => fail(`${program}: ${errorMessage(err)}`));
      child.on('exit', (code) => (code ? fail(`${program} exited with status ${code}`) : undefined));
    };
    const why = `native notify addon not available (${loaded.error}): telling systemd through ${program}, which systemd 252 may miss (the unit's NotifyAccess=all helps)`;
    return new SystemdNotifier(viaProgram, logger, watchdogMs, why);
  }

  /** Every listener is bound: `systemctl start` returns now. Starts the watchdog if systemd set one. */
  ready(status: string): void {
    this.notify(`READY=1\nSTATUS=${oneLine(status)}`);
    this.startWatchdog();
  }

  /** A reload begins (MONOTONIC_USEC: what Type=notify-reload wants; harmless for Type=notify). */
  reloading(): void {
    this.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
  }

  /** The drain begins: systemd shows the unit as deactivating. The watchdog keeps running until exit. */
  stopping(status: string): void {
    this.notify(`STOPPING=1\nSTATUS=${oneLine(status)}`);
  }

  /**
   * WATCHDOG=1 from a timer on the main event loop: what it proves is that this loop still turns
   * (not blocked by a busy loop or a stuck synchronous call), nothing about each connection. In a
   * cluster it is the supervisor's loop; a worker that dies is replaced by the supervisor.
   */
  private startWatchdog(): void {
    if (this.watchdogMs <= 0 || this.watchdog) return;
    this.notify('WATCHDOG=1');
    this.watchdog = setInterval(() => this.notify('WATCHDOG=1'), this.watchdogMs);
    this.watchdog.unref();
  }

  private notify(message: string): void {
    try {
      this.send(message, (why) => this.warnOnce(why));
    } catch (err) {
      this.warnOnce(errorMessage(err));
    }
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.logger.warn({ event: Events.SYSTEMD_NOTIFY }, `systemd notification: ${message}`);
  }
}

/** Half of WATCHDOG_USEC in ms, when it is meant for this process; 0 otherwise. */
export function watchdogInterval(usec: string | undefined, pid: string | undefined, self = process.pid): number {
  if (!usec || !/^[0-9]+$/.test(usec)) return 0;
  if (pid && pid !== String(self)) return 0;
  const ms = Math.floor(Number(usec) / 2000);
  return ms >= 1 ? ms : 1;
}

/** STATUS= is one line. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

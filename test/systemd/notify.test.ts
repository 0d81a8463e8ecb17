/**
 * systemd readiness (Type=notify) for real: a python3 AF_UNIX datagram listener stands in for
 * systemd's NOTIFY_SOCKET, and the real `portcullis start` sends to it. READY=1 must come only
 * once the proxy and admin ports accept connections (the listener connects to them the moment it
 * gets READY=1), once, from the single process or the cluster supervisor; STOPPING=1 when SIGTERM
 * starts the drain; RELOADING=1 then READY=1 around a SIGHUP; WATCHDOG=1 with WATCHDOG_USEC set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/servers.js';
import { requireBinary } from '../helpers/system.js';

const python = requireBinary('python3');
const systemdNotify = requireBinary('systemd-notify');
const LISTENER = fileURLToPath(new URL('./notify-listener.py', import.meta.url));

interface Notification {
  fields: Record<string, string>;
  /** For READY=1: port -> whether a TCP connection to it was accepted at that moment. */
  accepted: Record<string, boolean>;
}

interface NotifySocket {
  path: string;
  received: Notification[];
  /** The first notification from index `since` on that matches. */
  waitFor(match: (n: Notification) => boolean, since?: number, timeoutMs?: number): Promise<Notification>;
  close(): void;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanups.splice(0).reverse()) fn();
});

async function listenForNotifications(ports: number[]): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'pcl-notify-'));
  const path = join(dir, 'notify.sock');
  const proc: ChildProcess = spawn(python ?? 'python3', [LISTENER, path, ...ports.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const received: Notification[] = [];
  const waiters = new Set<() => void>();
  let bound: () => void = () => {};
  const isBound = new Promise<void>((resolve) => (bound = resolve));
  if (!proc.stdout) throw new Error('no stdout');
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const m = JSON.parse(line) as Notification | { bound: string };
    if ('bound' in m) bound();
    else received.push(m);
    for (const w of [...waiters]) w();
  });
  const close = (): void => {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(close);
  await Promise.race([isBound, new Promise((_, reject) => proc.once('exit', (code) => reject(new Error(`notify listener exited (${code})`))))]);
  return {
    path,
    received,
    close,
    waitFor(match, since = 0, timeoutMs = 45_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = received.slice(since).find(match);
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`notification not seen in ${timeoutMs} ms; received: ${JSON.stringify(received)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

async function gatewayWithNotify(workers: number, env: Record<string, string> = {}): Promise<{ gw: SpawnedGateway; notify: NotifySocket; ports: number[] }> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const notify = await listenForNotifications([proxyPort, adminPort]);
  const gw = spawnGateway(
    { proxy: { listen: [`127.0.0.1:${proxyPort}`], workers, drainMs: 1_000 }, admin: { listen: `127.0.0.1:${adminPort}` } },
    { env: { NOTIFY_SOCKET: notify.path, ...env } },
  );
  cleanups.push(() => gw.proc.kill('SIGKILL'));
  return { gw, notify, ports: [proxyPort, adminPort] };
}

const is =
  (key: string, value = '1') =>
  (n: Notification): boolean =>
    n.fields[key] === value;

describe.skipIf(!python || !systemdNotify)('sd_notify readiness (Type=notify)', () => {
  it('single process: READY=1 once both ports accept, WATCHDOG=1, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM', { timeout: 90_000 }, async () => {
    const { gw, notify, ports } = await gatewayWithNotify(1, { WATCHDOG_USEC: '200000' });
    const ready = await notify.waitFor(is('READY'));
    // Nothing said before it, and both listeners took a connection the instant it arrived.
    expect(notify.received[0]).toBe(ready);
    expect(ready.accepted).toEqual({ [ports[0] ?? 0]: true, [ports[1] ?? 0]: true });
    expect(ready.fields.STATUS).toBe('ready: listening');

    // WATCHDOG_USEC=200000: every 100 ms; two of them show it repeats.
    const firstPing = await notify.waitFor(is('WATCHDOG'));
    await notify.waitFor(is('WATCHDOG'), notify.received.indexOf(firstPing) + 1);

    const beforeReload = notify.received.length;
    gw.proc.kill('SIGHUP');
    const reloading = await notify.waitFor(is('RELOADING'), beforeReload);
    expect(reloading.fields.MONOTONIC_USEC).toMatch(/^[0-9]+$/);
    const readyAgain = await notify.waitFor(is('READY'), notify.received.indexOf(reloading) + 1);
    expect(readyAgain.fields.STATUS).toBe('ready: configuration reloaded');

    const beforeStop = notify.received.length;
    gw.proc.kill('SIGTERM');
    const stopping = await notify.waitFor(is('STOPPING'), beforeStop);
    expect(stopping.fields.STATUS).toBe('draining (SIGTERM)');
    expect(await gw.exited).toBe(0);
    expect(gw.logs.filter((r) => r.event === 210)).toEqual([]);
  });

  it('cluster: the supervisor says READY=1 once, after every worker listens; STOPPING=1 on SIGTERM', { timeout: 90_000 }, async () => {
    const { gw, notify, ports } = await gatewayWithNotify(2);
    const ready = await notify.waitFor(is('READY'));
    expect(notify.received[0]).toBe(ready);
    expect(ready.accepted).toEqual({ [ports[0] ?? 0]: true, [ports[1] ?? 0]: true });
    // Both workers listen (the supervisor's READY=1 waits for all of them, not the first).
    const metrics = await (await fetch(`http://127.0.0.1:${ports[1] ?? 0}/metrics`)).text();
    expect(metrics).toMatch(/^portcullis_workers\{state="listening"\} 2$/m);

    gw.proc.kill('SIGTERM');
    await notify.waitFor(is('STOPPING'));
    expect(await gw.exited).toBe(0);
    // One READY=1 in all: the workers inherit no NOTIFY_SOCKET and send nothing.
    expect(notify.received.filter(is('READY')).length).toBe(1);
    expect(notify.received.filter(is('WATCHDOG')).length).toBe(0);
  });

  it('without the notify addon: says so once (event 210) and still tells systemd, through systemd-notify', { timeout: 90_000 }, async () => {
    const { gw, notify } = await gatewayWithNotify(1, { PORTCULLIS_NOTIFY_ADDON: '/nonexistent/portcullis_notify.node' });
    await notify.waitFor(is('READY'));
    const warning = await gw.waitForLog((r) => r.event === 210);
    expect(String(warning.msg)).toMatch(/native notify addon not available .*systemd-notify/);
    gw.proc.kill('SIGTERM');
    await notify.waitFor(is('STOPPING'));
    expect(await gw.exited).toBe(0);
    expect(gw.logs.filter((r) => r.event === 210).length).toBe(1);
  });
});

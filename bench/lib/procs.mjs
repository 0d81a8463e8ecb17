// Process bookkeeping for the benchmark harness.
//
// Every process the harness starts goes through spawnTracked()/forkTracked().
// Each one gets its own process group (detached: true), so on exit we can kill
// the group we created (e.g. Squid's master *and* its kids) by its id — never
// by name. cleanupAll() runs on normal exit, on error and on SIGINT/SIGTERM.

import { spawn, fork } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

const tracked = new Set(); // ChildProcess objects still alive

function track(child) {
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  return child;
}

export function spawnTracked(cmd, args, opts = {}) {
  return track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, detached: true }));
}

export function forkTracked(modulePath, args = [], opts = {}) {
  return track(fork(modulePath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...opts, detached: true }));
}

function killGroup(child, sig) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* gone */
    }
  }
}

/** Gracefully stop one tracked child: SIGTERM its group, SIGKILL after graceMs. */
export async function stopChild(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    tracked.delete(child);
    return;
  }
  const exited = new Promise((r) => child.once('exit', r));
  killGroup(child, 'SIGTERM');
  const t = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
  // Group members that outlived the leader (e.g. squid kids): make sure.
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* none left */
  }
}

/** Synchronous last-resort: SIGKILL every group we created. */
export function killAllSync() {
  for (const c of tracked) killGroup(c, 'SIGKILL');
  tracked.clear();
}

let handlersInstalled = false;
export function installCleanupHandlers(extra = () => {}) {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    try {
      extra();
    } catch {
      /* ignore */
    }
    killAllSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: stopping all spawned processes\n`);
      killAllSync();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`[bench] uncaught: ${err?.stack ?? err}\n`);
    killAllSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`[bench] unhandled rejection: ${err?.stack ?? err}\n`);
    killAllSync();
    process.exit(1);
  });
}

// ---------------------------------------------------------------- /proc stats

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3), so field N is rest[N-3]
    return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
  } catch {
    return null;
  }
}

/** pid plus all its descendants (walks /proc once). */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const pid = Number(name);
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(pid);
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64/arm64

/** Summed CPU seconds (user+system) of a process tree. */
export function treeCpuSeconds(rootPid) {
  let ticks = 0;
  for (const p of processTree(rootPid)) {
    const st = readStat(p);
    if (st) ticks += st.utime + st.stime;
  }
  return ticks / CLK_TCK;
}

/** Summed VmRSS in KiB of a process tree. */
export function treeRssKiB(rootPid) {
  let kib = 0;
  for (const p of processTree(rootPid)) {
    try {
      const m = /VmRSS:\s+(\d+)\s*kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      /* exited */
    }
  }
  return kib;
}

/** CPU meter over a tree: start(), then stop() -> percent of one core. */
export function cpuMeter(rootPid) {
  if (!rootPid) return { stop: () => null };
  const c0 = treeCpuSeconds(rootPid);
  const t0 = process.hrtime.bigint();
  return {
    stop() {
      const c1 = treeCpuSeconds(rootPid);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      return wall > 0 ? (100 * (c1 - c0)) / wall : null;
    },
  };
}

// ---------------------------------------------------------------- ports

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until host:port accepts a TCP connection. */
export async function waitForPort(port, host = '127.0.0.1', timeoutMs = 15000, child = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`process exited (code ${child.exitCode}, signal ${child.signalCode}) before listening on ${port}`);
    }
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${host}:${port}`);
    await sleep(100);
  }
}

/** Whole-machine busy CPU meter from /proc/stat: stop() -> % of one core (max = 100 x cores). */
export function systemCpuMeter() {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    return { busy: f.reduce((x, y) => x + y, 0) - idle };
  };
  const a = read();
  const t0 = process.hrtime.bigint();
  return {
    stop() {
      const b = read();
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      return (100 * (b.busy - a.busy)) / CLK_TCK / wall;
    },
  };
}

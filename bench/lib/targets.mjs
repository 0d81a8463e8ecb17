// The systems under test. Each target's start(ports) resolves with
//   { proxy: {host, port} | null, pid: number | null, stop(), note }
// proxy = null means "direct": generators connect to the upstream servers
// themselves (the ceiling). pid is the root of the proxy's process tree, used
// for CPU (/proc/<pid>/stat) and RSS (/proc/<pid>/status) sampling.

import { mkdtempSync, writeFileSync, existsSync, chownSync, chmodSync, rmSync, readFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { spawnTracked, stopChild, freePort, waitForPort, sleep } from './procs.mjs';

const REPO = resolve(new URL('../..', import.meta.url).pathname);
const tempDirs = [];
export function cleanupTempDirs() {
  if (process.env.BENCH_KEEP_TMP) return;
  for (const d of tempDirs.splice(0)) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
}
function tmp(prefix) {
  const d = mkdtempSync(join(tmpdir(), `portcullis-bench-${prefix}-`));
  tempDirs.push(d);
  return d;
}

function uidOf(user) {
  try {
    return Number(execFileSync('id', ['-u', user]).toString().trim());
  } catch {
    return null;
  }
}
function gidOf(user) {
  try {
    return Number(execFileSync('id', ['-g', user]).toString().trim());
  } catch {
    return null;
  }
}

function collectOutput(child) {
  let out = '';
  const add = (d) => {
    out += d;
    if (out.length > 20000) out = out.slice(-20000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => out;
}

async function started(child, port, name, logFile, getOut) {
  try {
    await waitForPort(port, '127.0.0.1', 20000, child);
  } catch (err) {
    let log = getOut();
    if (logFile && existsSync(logFile)) log += `\n--- ${logFile} ---\n` + readFileSync(logFile, 'utf8').slice(-4000);
    await stopChild(child, 500);
    throw new Error(`${name} did not start: ${err.message}\n${log}`);
  }
}

// ------------------------------------------------------------------ direct
const direct = {
  name: 'direct',
  async start() {
    return { proxy: null, pid: null, stop: async () => {}, note: 'no proxy (ceiling)' };
  },
};

// ------------------------------------------------------------------ squid
function squidTarget(name, workers, opts) {
  return {
    name,
    async start(ports) {
      const dir = tmp(name);
      const port = await freePort();
      const user = 'proxy';
      const conf = join(dir, 'squid.conf');
      const accessLog = opts.squidAccessLog ? `access_log stdio:${join(dir, 'access.log')}` : 'access_log none';
      writeFileSync(
        conf,
        [
          `# Portcullis benchmark: Squid as a production egress proxy (no cache).`,
          `http_port 127.0.0.1:${port}`,
          `workers ${workers}`,
          `acl bench_src src 127.0.0.1/32`,
          `acl bench_dst dst 127.0.0.1/32`,
          `acl bench_tunnel_ports port ${ports.echo} ${ports.sink} ${ports.fleet}`,
          `acl bench_http_ports port ${ports.http}`,
          `acl CONNECT method CONNECT`,
          `http_access allow CONNECT bench_src bench_dst bench_tunnel_ports`,
          `http_access deny CONNECT`,
          `http_access allow bench_src bench_dst bench_http_ports`,
          `http_access deny all`,
          `cache deny all`,
          `cache_mem 0 MB`,
          accessLog,
          `cache_log ${join(dir, 'cache.log')}`,
          `cache_store_log none`,
          `pid_filename ${join(dir, 'squid.pid')}`,
          `coredump_dir ${dir}`,
          `cache_effective_user ${user}`,
          `visible_hostname portcullis-bench`,
          `max_filedescriptors 20000`,
          `shutdown_lifetime 1 seconds`,
          `pinger_enable off`,
          `logfile_rotate 0`,
          `client_lifetime 1 hour`,
          `read_timeout 5 minutes`,
          ``,
        ].join('\n'),
      );
      const uid = uidOf(user),
        gid = gidOf(user);
      if (uid !== null) {
        chownSync(dir, uid, gid);
        chownSync(conf, uid, gid);
      }
      // --foreground (not -N): -N disables SMP, so "workers 2" would be ignored.
      // With --foreground the master stays our child and forks its kid(s), as
      // in a systemd deployment. -n gives a unique service name so the SMP IPC
      // sockets / shm segments do not collide with any other squid.
      const svc = `pcb${process.pid}${name}`.replace(/[^a-z0-9]/gi, '');
      const child = spawnTracked('/usr/sbin/squid', ['--foreground', '-n', svc, '-f', conf], { cwd: dir });
      const getOut = collectOutput(child);
      await started(child, port, name, join(dir, 'cache.log'), getOut);
      if (workers > 1) await sleep(1500); // let every kid finish starting
      return {
        proxy: { host: '127.0.0.1', port },
        pid: child.pid,
        stop: () => stopChild(child, 5000),
        note: `squid ${workers} worker(s), ${opts.squidAccessLog ? 'access_log on' : 'access_log none'}, cache deny all, no cache_dir`,
      };
    },
  };
}

// ------------------------------------------------------------------ tinyproxy
function tinyproxyTarget(opts) {
  return {
    name: 'tinyproxy',
    async start(ports) {
      const dir = tmp('tinyproxy');
      chmodSync(dir, 0o777);
      const port = await freePort();
      const conf = join(dir, 'tinyproxy.conf');
      writeFileSync(
        conf,
        [
          `User nobody`,
          `Group nogroup`,
          `Port ${port}`,
          `Listen 127.0.0.1`,
          `Timeout 600`,
          `LogFile "${join(dir, 'tinyproxy.log')}"`,
          `LogLevel Error`,
          `PidFile "${join(dir, 'tinyproxy.pid')}"`,
          `MaxClients ${opts.tinyproxyMaxClients}`,
          `Allow 127.0.0.1`,
          `ViaProxyName "tinyproxy"`,
          `ConnectPort ${ports.echo}`,
          `ConnectPort ${ports.sink}`,
          `ConnectPort ${ports.fleet}`,
          ``,
        ].join('\n'),
      );
      const child = spawnTracked('/usr/bin/tinyproxy', ['-d', '-c', conf], { cwd: dir });
      const getOut = collectOutput(child);
      await started(child, port, 'tinyproxy', join(dir, 'tinyproxy.log'), getOut);
      return {
        proxy: { host: '127.0.0.1', port },
        pid: child.pid,
        stop: () => stopChild(child, 3000),
        note: `tinyproxy, LogLevel Error, MaxClients ${opts.tinyproxyMaxClients}`,
      };
    },
  };
}

// ------------------------------------------------------------------ portcullis
/**
 * settings: workers, balance (round-robin|kernel), relay (auto|native|js), tls (true|false: proxy.tlsInspection.enabled), metrics (true|false),
 * accessLog (true|false; true also sets log.level info, the level access records are written at).
 * Every load generator connects from 127.0.0.1, so the per-client limit is raised to the total.
 */
function portcullisTarget(opts, name = 'portcullis', settings = {}) {
  const proxyExtra = [];
  if (settings.workers !== undefined) proxyExtra.push(`  workers: ${Number(settings.workers)}`);
  if (settings.balance !== undefined) proxyExtra.push(`  balance: ${settings.balance}`);
  if (settings.relay !== undefined) proxyExtra.push(`  relay: ${settings.relay}`);
  // tls=false: no TLS inspection (the tunnel goes to the relay with the 200, as before the peek existed).
  if (settings.tls !== undefined) proxyExtra.push(`  tlsInspection: { enabled: ${settings.tls === 'true' || settings.tls === true} }`);
  return {
    name,
    skipReason() {
      return existsSync(join(REPO, 'dist/cli/main.js')) ? null : 'dist/cli/main.js not found (run `npm run build` first)';
    },
    async start(ports) {
      const dir = tmp('portcullis');
      const port = await freePort();
      const adminPort = await freePort();
      const conf = join(dir, 'portcullis.yaml');
      writeFileSync(
        conf,
        [
          `proxy:`,
          `  listen: ["127.0.0.1:${port}"]`,
          `  limits: { maxConnections: 10000, maxConnectionsPerClient: 10000 }`,
          ...proxyExtra,
          `allow:`,
          `  presets: []`,
          `  rules:`,
          `    - name: bench`,
          `      hosts: ["127.0.0.1"]`,
          `      ports: [${ports.echo}, ${ports.sink}, ${ports.fleet}, ${ports.http}]`,
          `      allowPrivate: true`,
          `log:`,
          `  level: ${settings.accessLog === 'true' ? 'info' : 'warn'}`,
          `  access: ${settings.accessLog === 'true' ? 'true' : 'false'}`,
          `admin:`,
          `  listen: "127.0.0.1:${adminPort}"`,
          `  metrics: ${settings.metrics === 'false' ? 'false' : 'true'}`,
          ``,
        ].join('\n'),
      );
      // PORTCULLIS_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the gateway (not allowed in NODE_OPTIONS).
      const nodeArgs = (process.env.PORTCULLIS_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
      const args = [...nodeArgs, join(REPO, 'dist/cli/main.js'), 'start', '--config', conf, ...opts.portcullisArgs];
      // With the access log on, stdout goes to a file, as it would to journald or a log file, so
      // the harness does not pay for reading it.
      const logFile = join(dir, 'portcullis.log');
      const stdio = settings.accessLog === 'true' ? ['ignore', openSync(logFile, 'w'), 'pipe'] : undefined;
      const child = spawnTracked(process.execPath, args, { cwd: REPO, ...(stdio ? { stdio } : {}) });
      if (stdio) closeSync(stdio[1]); // the child has its own copy
      const getOut = collectOutput(child);
      await started(child, port, 'portcullis', stdio ? logFile : null, getOut);
      return {
        proxy: { host: '127.0.0.1', port },
        pid: child.pid,
        stop: () => stopChild(child, 5000),
        note: `node dist/cli/main.js start ${JSON.stringify(settings)} ${opts.portcullisArgs.join(' ')}`.trim(),
      };
    },
  };
}

// ------------------------------------------------------------------ external
// --external name=host:port[:pid] : any already-running forward proxy. Its
// allowlist must permit the upstream ports (printed at start); without a pid,
// CPU/RSS columns stay empty.
function externalTarget(spec) {
  const [name, addr] = spec.split('=');
  const [host, port, pid] = addr.split(':');
  return {
    name,
    async start() {
      await waitForPort(Number(port), host, 3000);
      return { proxy: { host, port: Number(port) }, pid: pid ? Number(pid) : null, stop: async () => {}, note: `external ${addr}` };
    },
  };
}

export function makeTargets(opts) {
  const all = {
    direct,
    squid: squidTarget('squid', 1, opts),
    squid2: squidTarget('squid2', 2, opts),
    tinyproxy: tinyproxyTarget(opts),
    portcullis: portcullisTarget(opts),
  };
  for (const spec of opts.external) {
    const t = externalTarget(spec);
    all[t.name] = t;
  }
  // --variant name:key=val,key=val → target "portcullis-name" (compare data-plane choices in one run)
  for (const spec of opts.variants ?? []) {
    const [vname, kv = ''] = spec.split(':');
    const settings = Object.fromEntries(
      kv
        .split(',')
        .filter(Boolean)
        .map((p) => p.split('=')),
    );
    all[`portcullis-${vname}`] = portcullisTarget(opts, `portcullis-${vname}`, settings);
  }
  return all;
}

/** Names whose numbers the "portcullis / best peer" ratio compares against. */
export const PEERS = ['squid', 'squid2', 'tinyproxy'];

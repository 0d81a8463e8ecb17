/**
 * A real Squid (Debian package) as a relay (corporate) proxy for the gateway, on 127.0.0.1, in the
 * shape bench/lib/targets.mjs runs it (its own directory, process group and service name, no
 * cache), plus what a corporate relay has: Basic authentication through basic_ncsa_auth with an
 * htpasswd file (`openssl passwd -apr1`), and a hosts_file so Squid resolves the test names the
 * gateway maps with dns.overrides. Its access log (one line per transaction, written when it ends)
 * shows what went through it.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers.js';

export const SQUID = '/usr/sbin/squid';
export const NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';

export interface SquidOptions {
  /** user → password; absent = no authentication. */
  users?: Record<string, string>;
  /** name → IP, for Squid's own resolution (hosts_file). */
  hosts?: Record<string, string>;
  /** Listen on this port (a restart on the same port); default a free one. */
  port?: number;
}

export interface SquidRelay {
  port: number;
  /** http://127.0.0.1:port */
  url: string;
  /** The access log's lines so far (`method` and `url` columns in Squid's native format). */
  accessLog(): string[];
  /** Waits (default 10 s) until the access log has a line that matches. */
  waitForAccess(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

function idOf(flag: '-u' | '-g', user: string): number | null {
  try {
    return Number(execFileSync('id', [flag, user]).toString().trim());
  } catch {
    return null;
  }
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects if the child exits first or after timeoutMs. */
async function listening(child: ChildProcess, port: number, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`squid exited (${child.exitCode ?? child.signalCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`squid not listening on ${port} after ${timeoutMs} ms: ${log()}`);
    // Squid gives no readiness signal we can wait on: poll its port.
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSquid(opts: SquidOptions = {}): Promise<SquidRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-squid-'));
  const port = opts.port ?? (await freePort());
  const accessLog = join(dir, 'access.log');
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `acl local_src src 127.0.0.1/32`,
    'cache deny all',
    'cache_mem 0 MB',
    `access_log stdio:${accessLog}`,
    `cache_log ${join(dir, 'cache.log')}`,
    'cache_store_log none',
    `pid_filename ${join(dir, 'squid.pid')}`,
    `coredump_dir ${dir}`,
    'cache_effective_user proxy',
    'visible_hostname portcullis-test-relay',
    'shutdown_lifetime 0 seconds',
    'pinger_enable off',
    'logfile_rotate 0',
    'max_filedescriptors 4096',
  ];
  if (opts.hosts) {
    const hostsFile = join(dir, 'hosts');
    writeFileSync(
      hostsFile,
      Object.entries(opts.hosts)
        .map(([name, ip]) => `${ip} ${name}\n`)
        .join(''),
    );
    lines.push(`hosts_file ${hostsFile}`);
  }
  if (opts.users) {
    const passwd = join(dir, 'passwd');
    const entries = Object.entries(opts.users).map(
      ([user, password]) => `${user}:${execFileSync('openssl', ['passwd', '-apr1', password]).toString().trim()}\n`,
    );
    writeFileSync(passwd, entries.join(''));
    lines.push(
      `auth_param basic program ${NCSA_AUTH} ${passwd}`,
      'auth_param basic realm portcullis-test-relay',
      'auth_param basic children 2',
      'acl authed proxy_auth REQUIRED',
      'http_access allow local_src authed',
    );
  } else lines.push('http_access allow local_src');
  lines.push('http_access deny all', '');
  const conf = join(dir, 'squid.conf');
  writeFileSync(conf, lines.join('\n'));
  const uid = idOf('-u', 'proxy');
  const gid = idOf('-g', 'proxy');
  if (uid !== null && gid !== null)
    for (const f of [dir, conf, ...['hosts', 'passwd'].map((n) => join(dir, n)).filter((f) => existsSync(f))]) chownSync(f, uid, gid);

  // A service name of its own: SMP sockets and shared memory never collide with another Squid.
  const svc = `pct${process.pid}x${port}`;
  const child = spawn(SQUID, ['--foreground', '-n', svc, '-f', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cacheLog = (): string => {
    const f = join(dir, 'cache.log');
    return out + (existsSync(f) ? readFileSync(f, 'utf8').slice(-4000) : '');
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    if (pid === undefined) return;
    // Our own process group (detached): the master and its kid, by id. SIGTERM with
    // shutdown_lifetime 0 ends it at once and cleans its shared memory; SIGKILL if it does not.
    const signal = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await listening(child, port, 20_000, cacheLog);
  } catch (err) {
    await stop();
    throw err;
  }
  const read = (): string[] =>
    existsSync(accessLog)
      ? readFileSync(accessLog, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
      : [];
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accessLog: read,
    async waitForAccess(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = read().find(match);
        if (hit !== undefined) return hit;
        if (Date.now() > deadline) throw new Error(`no matching squid access log line in ${timeoutMs} ms: ${read().slice(-5).join('\n')}`);
        // The log is a file Squid appends to: poll it.
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
}

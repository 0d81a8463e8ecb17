/**
 * Runs the real `portcullis start` CLI (compiled dist/, built by `npm test`'s pretest) as a child
 * process on 127.0.0.1:0 with a test config, and collects its JSON log lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

/** test/sanitize.sh runs Node with the ASan runtime, which starts a gateway about 1.5 times slower: it stretches the start-up wait. */
const START_WAIT_FACTOR = Math.max(1, Number(process.env.PORTCULLIS_TEST_START_WAIT_FACTOR) || 1);

export type LogRecord = Record<string, unknown> & { event?: number; msg?: string };

export interface GatewayProcess {
  proc: ChildProcess;
  pid: number;
  port: number;
  adminPort?: number;
  configFile: string;
  logs: LogRecord[];
  /**
   * Resolves with the first log record (already seen or future) that matches; with `since` (an
   * index into `logs`, e.g. `logs.length` before the test's traffic), only records from there on.
   */
  waitForLog(match: (r: LogRecord) => boolean, timeoutMs?: number, since?: number): Promise<LogRecord>;
  /** Rewrite the config file (same listen address) and send SIGHUP; wait (default 10 s) for the outcome. */
  reload(config: Record<string, unknown>, timeoutMs?: number): Promise<void>;
  /** Send a signal and wait for exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

function withTestDefaults(config: Record<string, unknown>): Record<string, unknown> {
  const proxy = (config.proxy ?? {}) as Record<string, unknown>;
  const admin = (config.admin ?? {}) as Record<string, unknown>;
  const log = (config.log ?? {}) as Record<string, unknown>;
  return {
    ...config,
    proxy: { listen: ['127.0.0.1:0'], workers: 1, ...proxy },
    admin: { listen: '127.0.0.1:0', ...admin },
    log: { level: 'info', access: true, ...log },
  };
}

/** A spawned `portcullis start`, whether or not it gets as far as listening. */
export interface SpawnedGateway {
  proc: ChildProcess;
  configFile: string;
  logs: LogRecord[];
  /** Everything written to stderr so far. */
  stderr: () => string;
  waitForLog: (match: (r: LogRecord) => boolean, timeoutMs?: number, since?: number) => Promise<LogRecord>;
  exited: Promise<number | null>;
}

/** Spawn the CLI with the test config and collect its log lines; no wait for anything. */
export interface SpawnOptions {
  env?: Record<string, string>;
  args?: string[];
  cli?: string;
  /** Lower the gateway's descriptor limit (`ulimit -n`, through bash, which then execs node: same pid). */
  nofile?: number;
}

export function spawnGateway(config: Record<string, unknown>, opts: SpawnOptions = {}): SpawnedGateway {
  const cli = opts.cli ?? CLI;
  if (!existsSync(cli)) throw new Error(`${cli} missing: run \`npm run build\` (npm test does it)`);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const configFile = join(dir, 'portcullis.yaml');
  writeFileSync(configFile, stringify(withTestDefaults(config)));
  const argv = [cli, 'start', '--config', configFile, ...(opts.args ?? [])];
  const env = { ...process.env, ...opts.env };
  const proc =
    opts.nofile === undefined
      ? spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn('bash', ['-c', `ulimit -n ${opts.nofile} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const logs: LogRecord[] = [];
  const waiters = new Set<{ match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }>();
  let buf = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        rec = { msg: line, unparsed: true };
      }
      logs.push(rec);
      for (const w of waiters) {
        if (w.match(rec)) {
          waiters.delete(w);
          w.resolve(rec);
        }
      }
    }
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));

  const waitForLog = (matchAny: (r: LogRecord) => boolean, timeoutMs = 10_000, since = 0): Promise<LogRecord> => {
    const match = since > 0 ? (r: LogRecord): boolean => logs.indexOf(r) >= since && matchAny(r) : matchAny;
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogRecord>((resolve, reject) => {
      const w = {
        match,
        resolve: (r: LogRecord) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`log record not seen in ${timeoutMs} ms; last records: ${JSON.stringify(logs.slice(-5))}; stderr: ${stderr.slice(-2000)}`));
      }, timeoutMs);
      waiters.add(w);
    });
  };
  return { proc, configFile, logs, stderr: () => stderr, waitForLog, exited };
}

export async function startGateway(
  config: Record<string, unknown>,
  opts: SpawnOptions & { /** default 15 s */ listenTimeoutMs?: number } = {},
): Promise<GatewayProcess> {
  const { proc, configFile, logs, stderr, waitForLog, exited } = spawnGateway(config, opts);
  const listening = await Promise.race([
    waitForLog((r) => r.msg === 'proxy listening', (opts.listenTimeoutMs ?? 15_000) * START_WAIT_FACTOR),
    exited.then((code) => {
      throw new Error(`gateway exited (${code}) before listening: ${stderr().slice(-2000)} ${JSON.stringify(logs.slice(-5))}`);
    }),
  ]).catch((err: unknown) => {
    // The caller never gets a handle to stop it: do not leave it (and its workers) running.
    proc.kill('SIGKILL');
    throw err;
  });
  const listen = listening.listen as Array<{ host: string; port: number }>;
  const admin = logs.find((r) => r.msg === 'admin listening') as (LogRecord & { port?: number }) | undefined;

  return {
    proc,
    pid: proc.pid!,
    port: listen[0]!.port,
    ...(admin?.port !== undefined ? { adminPort: admin.port } : {}),
    configFile,
    logs,
    waitForLog,
    exited,
    async reload(next: Record<string, unknown>, timeoutMs?: number) {
      const withListen = withTestDefaults(next);
      (withListen.proxy as Record<string, unknown>).listen = [`127.0.0.1:${listen[0]!.port}`];
      writeFileSync(configFile, stringify(withListen));
      const before = logs.length;
      proc.kill('SIGHUP');
      await waitForLog((r) => logs.indexOf(r) >= before && (r.msg === 'configuration reloaded' || String(r.msg).startsWith('reload refused')), timeoutMs);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * rsyslog (Debian's rsyslogd) as a real sender, run in the foreground as a child of the test with
 * its own config, pid file and work directory under a temp dir; no imuxsock (it never touches the
 * host's /dev/log). Messages enter through its imtcp input (port 0, the bound port written to a
 * file) and leave through the action the test gives (omfwd or omrelp towards Portcullis).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, watch, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Rsyslog {
  readonly dir: string;
  readonly child: ChildProcess;
  /** imtcp port messages can be sent to (newline framing). */
  readonly inputPort: number;
  /** Sends lines to rsyslog's imtcp input over one connection and closes it. */
  send(lines: string[]): Promise<void>;
  /** stderr so far (rsyslog's own errors, with -n). */
  stderr(): string;
  stop(): Promise<void>;
}

function waitForFile(file: string, timeoutMs: number, child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const dir = join(file, '..');
    const check = (): boolean => {
      if (!existsSync(file)) return false;
      const text = readFileSync(file, 'utf8').trim();
      if (text === '') return false;
      done();
      resolve(text);
      return true;
    };
    const watcher = watch(dir, () => void check());
    const timer = setTimeout(() => {
      done();
      reject(new Error(`rsyslogd did not write ${file} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`rsyslogd exited (${code ?? 'signal'}) before it was ready`));
    };
    child.once('exit', onExit);
    function done(): void {
      watcher.close();
      clearTimeout(timer);
      child.off('exit', onExit);
    }
    check();
  });
}

/** `action` is RainerScript for the output (one or more action() statements); `modules` extra module loads. */
export async function startRsyslog(binary: string, opts: { action: string; modules?: string; global?: string }): Promise<Rsyslog> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-rsyslog-'));
  const portFile = join(dir, 'imtcp.port');
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(
    conf,
    [
      `global(workDirectory="${dir}" ${opts.global ?? ''})`,
      'module(load="imtcp" MaxSessions="100")',
      opts.modules ?? '',
      `input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="${portFile}")`,
      opts.action,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LD_PRELOAD: '' },
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.on('error', () => undefined);
  const inputPort = Number(await waitForFile(portFile, 15_000, child));
  return {
    dir,
    child,
    inputPort,
    stderr: () => err,
    send: (lines) => sendLines(inputPort, lines),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * One connection to rsyslog's imtcp input, the lines written, closed. imtcp writes its port file
 * when the socket is bound, a moment before it listens: a refused connect right after start is
 * tried again (bounded: 50 times, 20 ms apart); rsyslog tells us no other way that it listens.
 */
async function sendLines(port: number, lines: string[], attempt = 0): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.end(lines.map((l) => `${l}\n`).join(''));
      });
      s.setTimeout(10_000, () => s.destroy(new Error('rsyslog input did not take the lines')));
      s.on('error', reject);
      s.on('close', (hadError) => hadError || resolve());
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || attempt >= 50) throw err;
    await new Promise((r) => setTimeout(r, 20));
    return sendLines(port, lines, attempt + 1);
  }
}

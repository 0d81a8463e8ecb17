/**
 * High availability: three real `portcullis start` processes behind a real HAProxy running the
 * shipped reference configuration (config/haproxy.cfg; only addresses, ports, the socket path, the
 * log target and maxconn are rewritten). Clients keep opening tunnels through HAProxy while one gateway is drained
 * (SIGTERM, one of its tunnels still open) and another is killed (SIGKILL).
 *
 * Shown: HAProxy takes the draining node out as soon as its /readyz answers 503 (a layer-7 check
 * failure, not a refused connection) while that node's open tunnel keeps working; new tunnels keep
 * succeeding throughout; the only failed attempts are the ones in flight on the killed node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { freePort, startTcpEcho } from '../helpers/servers.js';
import { requireBinary } from '../helpers/system.js';

const haproxyBin = requireBinary('haproxy');
const REFERENCE = new URL('../../config/haproxy.cfg', import.meta.url);
const ECHO_HOST = 'echo.ha.example.com';
const CLIENTS = 6;
const ATTEMPT_TIMEOUT_MS = 5_000;

interface Attempt {
  start: number;
  end: number;
  ok: boolean;
  error?: string;
}

/** The reference file with this test's addresses; every rewrite must apply, so the file cannot drift from what is tested. */
function haproxyConfig(port: number, socket: string, gateways: GatewayProcess[]): string {
  let text = readFileSync(REFERENCE, 'utf8');
  const rewrite = (from: RegExp, to: string): void => {
    expect(text, `config/haproxy.cfg no longer has ${String(from)}`).toMatch(from);
    text = text.replace(from, to);
  };
  rewrite(/^\s*log \/dev\/log.*$/m, '    log stdout format raw local0 info');
  rewrite(/^(\s*)stats socket \S+/m, `$1stats socket ${socket}`);
  // maxconn 100000 needs ~200,000 descriptors, more than an unprivileged test may raise its limit to.
  rewrite(/^(\s*)maxconn \d+/m, '$1maxconn 4096');
  rewrite(/^(\s*)bind :8080$/m, `$1bind 127.0.0.1:${port}`);
  rewrite(/^(\s*default-server check port) 9464(.*)$/m, '$1 ADMIN_PORT_PER_SERVER$2');
  // One server line per gateway, each checked on its own admin port (nodes on one host here).
  const servers = gateways.map((g, i) => `    server gw${i + 1} 127.0.0.1:${g.port} check port ${g.adminPort ?? 0}`).join('\n');
  rewrite(/(\s*server gw\d+ \S+:8080\n)+/, `\n${servers}\n`);
  text = text.replace(' port ADMIN_PORT_PER_SERVER', '');
  // The ingest frontend has no forwarder behind it in this test.
  const ingest = text.indexOf('frontend portcullis_ingest');
  expect(ingest).toBeGreaterThan(0);
  return text.slice(0, ingest);
}

/** HAProxy's runtime API over its stats socket. */
function runtimeApi(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let out = '';
    c.setEncoding('utf8');
    c.setTimeout(5_000, () => c.destroy(new Error('stats socket timed out')));
    c.on('data', (d: string) => (out += d));
    c.on('error', reject);
    c.on('end', () => resolve(out));
    // Not end(): HAProxy drops a half-closed CLI connection unanswered; it closes after one answer.
    c.on('connect', () => c.write(`${command}\n`));
  });
}

interface ServerStat {
  status: string;
  checkStatus: string;
  checkCode: string;
}

async function serverStats(socket: string): Promise<Map<string, ServerStat>> {
  const csv = await runtimeApi(socket, 'show stat');
  const [header = '', ...rows] = csv.split('\n').filter((l) => l.trim() !== '');
  const cols = header.replace(/^# /, '').split(',');
  const at = (name: string): number => cols.indexOf(name);
  const out = new Map<string, ServerStat>();
  for (const row of rows) {
    const f = row.split(',');
    if (f[at('pxname')] !== 'portcullis_proxy_nodes' || !String(f[at('svname')]).startsWith('gw')) continue;
    out.set(String(f[at('svname')]), { status: f[at('status')] ?? '', checkStatus: f[at('check_status')] ?? '', checkCode: f[at('check_code')] ?? '' });
  }
  return out;
}

async function waitForStat(socket: string, server: string, match: (s: ServerStat) => boolean, timeoutMs: number): Promise<ServerStat> {
  const deadline = Date.now() + timeoutMs;
  let last: ServerStat | undefined;
  let lastError = '';
  while (Date.now() < deadline) {
    // The socket appears once HAProxy has started: until then, look again.
    last = (
      await serverStats(socket).catch((err: unknown) => {
        lastError = String(err);
        return new Map<string, ServerStat>();
      })
    ).get(server);
    if (last && match(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${server} not in the expected state within ${timeoutMs} ms; last: ${JSON.stringify(last)} ${lastError}`);
}

/** One tunnel through HAProxy: CONNECT, 16 bytes echoed, close. */
async function tunnelAttempt(port: number, echoPort: number, seq: number): Promise<Attempt> {
  const start = Date.now();
  let socket: net.Socket | undefined;
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('attempt timed out')), ATTEMPT_TIMEOUT_MS).unref());
  try {
    const work = (async () => {
      const t = await openTunnel(port, `${ECHO_HOST}:${echoPort}`);
      socket = t.socket;
      socket.on('error', () => undefined);
      if (t.status !== 200) throw new Error(`CONNECT answered ${t.status}`);
      const payload = Buffer.from(`attempt-${String(seq).padStart(8, '0')}`);
      socket.write(payload);
      const back = await readBytes(socket, payload.length, t.rest);
      if (!back.equals(payload)) throw new Error('echo mismatch');
    })();
    await Promise.race([work, timer]);
    return { start, end: Date.now(), ok: true };
  } catch (err) {
    return { start, end: Date.now(), ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    socket?.destroy();
  }
}

describe.skipIf(!haproxyBin)('HA: three gateways behind HAProxy (config/haproxy.cfg)', () => {
  let echo: Awaited<ReturnType<typeof startTcpEcho>>;
  let gateways: GatewayProcess[] = [];
  let haproxy: ChildProcess | undefined;
  let haproxyExited: Promise<void> | undefined;
  let haproxyLog = '';
  let port = 0;
  let socket = '';

  beforeAll(async () => {
    echo = await startTcpEcho();
    const config = {
      // drainDelayMs above HAProxy's detection time (inter 1s, fall 1): the listener closes after the node is out.
      proxy: { drainMs: 20_000, drainDelayMs: 2_000 },
      allow: { presets: [], rules: [{ name: 'echo', hosts: [ECHO_HOST], ports: [echo.port], allowPrivate: true }] },
      dns: { overrides: { [ECHO_HOST]: '127.0.0.1' } },
      log: { level: 'info', access: false },
    };
    gateways = await Promise.all([startGateway(config), startGateway(config), startGateway(config)]);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-ha-'));
    socket = join(dir, 'haproxy.sock');
    port = await freePort();
    const cfgFile = join(dir, 'haproxy.cfg');
    writeFileSync(cfgFile, haproxyConfig(port, socket, gateways));
    const child = spawn(haproxyBin ?? 'haproxy', ['-db', '-f', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy = child;
    haproxyExited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    child.stderr.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    // Every node up (rise 2: two good checks) before the clients start.
    for (const name of ['gw1', 'gw2', 'gw3']) {
      await waitForStat(socket, name, (s) => s.status === 'UP', 15_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\nhaproxy output:\n${haproxyLog.slice(-3000)}`);
      });
    }
  }, 60_000);

  afterAll(async () => {
    if (haproxy?.pid !== undefined && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await haproxyExited;
    }
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
    await echo?.close();
  });

  it('a drained node leaves the rotation on its /readyz 503, a killed one on its refused connections; new tunnels keep succeeding', async () => {
    const [, draining, killed] = gateways;
    if (!draining || !killed) throw new Error('three gateways expected');
    const attempts: Attempt[] = [];
    let stop = false;
    let seq = 0;
    const clients = Array.from({ length: CLIENTS }, async () => {
      while (!stop) attempts.push(await tunnelAttempt(port, echo.port, seq++));
    });
    const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

    // A tunnel held open on the node about to drain: it must keep working through the drain, and
    // it keeps that node's drain (and its /readyz 503) going while HAProxy checks it.
    const held = await openTunnel(draining.port, `${ECHO_HOST}:${echo.port}`);
    expect(held.status).toBe(200);
    held.socket.on('error', () => undefined);

    await settle(1_500);
    const beforeDrain = attempts.length;
    const sigterm = Date.now();
    draining.proc.kill('SIGTERM');
    const drainedStat = await waitForStat(socket, 'gw2', (s) => s.status.startsWith('DOWN'), 5_000);
    const drainDetectedMs = Date.now() - sigterm;
    // Taken out by the readiness answer itself (layer-7 status 503), not by a refused connection.
    expect(drainedStat.checkStatus).toBe('L7STS');
    expect(drainedStat.checkCode).toBe('503');
    const ping = Buffer.from('still-here');
    held.socket.write(ping);
    expect((await readBytes(held.socket, ping.length, held.rest)).equals(ping)).toBe(true);

    await settle(1_000);
    const kill = Date.now();
    killed.proc.kill('SIGKILL');
    // Until the process is gone the kernel still completes connections to its listener: a tunnel
    // started before then may have been sent to it. One started after it cannot reach it.
    let gone = Number.POSITIVE_INFINITY;
    void killed.exited.then(() => (gone = Date.now()));
    const killedStat = await waitForStat(socket, 'gw3', (s) => s.status.startsWith('DOWN'), 5_000);
    const killDetectedMs = Date.now() - kill;
    const afterKillDown = attempts.length;
    await settle(2_000);
    stop = true;
    await Promise.all(clients);
    held.socket.destroy();

    const failed = attempts.filter((a) => !a.ok);
    const inFlightAtKill = failed.filter((a) => a.start <= gone && a.end >= kill);
    console.log(
      `HA test: ${attempts.length} tunnel attempts, ${failed.length} failed (${inFlightAtKill.length} in flight on the killed node, which was gone ${gone - kill} ms after SIGKILL); ` +
        `drained node out of rotation ${drainDetectedMs} ms after SIGTERM (${drainedStat.checkStatus} ${drainedStat.checkCode}), ` +
        `killed node ${killDetectedMs} ms after SIGKILL (${killedStat.checkStatus}); ` +
        `${attempts.length - afterKillDown} attempts after both were out, all through gw1`,
    );
    if (failed.length > 0)
      console.log('failed attempts:', JSON.stringify(failed.slice(0, 10).map((a) => ({ ...a, start: a.start - kill, end: a.end - kill }))));
    // Every failure was a tunnel on its way to or through the killed node while it died; the drain cost none.
    expect(failed.filter((a) => !(a.start <= gone && a.end >= kill))).toEqual([]);
    expect(beforeDrain).toBeGreaterThan(0);
    expect(attempts.length - afterKillDown).toBeGreaterThan(CLIENTS);
    // The drained node finishes its drain once its last tunnel is gone, and exits 0.
    expect(await draining.exited).toBe(0);
  }, 60_000);
});

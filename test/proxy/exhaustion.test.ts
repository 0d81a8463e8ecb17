/**
 * Descriptor exhaustion (issue 13, item 4): the gateway runs with `ulimit -n 256` and 1,000
 * connections arrive at once. It answers what it can (tunnels up to its descriptor budget, 503 with
 * Retry-After past it, the rest closed at accept), does not spin while descriptors are short, says
 * so once per interval (event 112) and in /metrics, and recovers fully once the clients leave.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { metric, scrape, sampleSum } from '../helpers/metrics.js';
import { run } from '../helpers/system.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** User + system CPU seconds of a process so far (Linux /proc; clock ticks are 1/100 s in the ABI). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

type Outcome = { status: number; socket: net.Socket } | { status: 'closed'; socket: net.Socket };

/** Connect, send a CONNECT, and resolve with the answer's status or 'closed' when none came. */
function attempt(port: number, authority: string): Promise<Outcome> {
  return new Promise((done) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let head = '';
    let settled = false;
    const settle = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      done(o);
    };
    socket.on('connect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n/.exec(head);
      if (m) settle({ status: Number(m[1]), socket });
    });
    socket.on('error', () => settle({ status: 'closed', socket }));
    socket.on('close', () => settle({ status: 'closed', socket }));
  });
}

async function echoGateway(extra: { nofile: number }): Promise<{ gw: GatewayProcess; echo: TestServer }> {
  const echo = await startTcpEcho();
  cleanups.push(() => echo.close());
  const gw = await startGateway(
    {
      allow: { presets: [], rules: [{ name: 'echo', hosts: ['echo.example.com'], ports: [echo.port], allowPrivate: true }] },
      dns: { overrides: { 'echo.example.com': '127.0.0.1' } },
    },
    { nofile: extra.nofile },
  );
  cleanups.push(() => gw.stop('SIGKILL'));
  return { gw, echo };
}

describe('descriptor exhaustion (ulimit -n 256)', () => {
  it('answers what it can, does not spin, reports it once per interval and in /metrics, and recovers', async () => {
    const { gw, echo } = await echoGateway({ nofile: 256 });
    const authority = `echo.example.com:${echo.port}`;
    const logsBefore = gw.logs.length;

    const outcomes = await Promise.all(Array.from({ length: 1000 }, () => attempt(gw.port, authority)));
    cleanups.push(async () => outcomes.forEach((o) => o.socket.destroy()));
    const count = (s: number | 'closed'): number => outcomes.filter((o) => o.status === s).length;
    const statuses = new Set(outcomes.map((o) => o.status));
    // Tunnels up to the budget; refusals that say "try again" past it; never a 502 that blames the destination.
    expect([...statuses].every((s) => s === 200 || s === 503 || s === 'closed')).toBe(true);
    expect(count(200)).toBeGreaterThanOrEqual(50);
    expect(count(503)).toBeGreaterThan(0);

    // Logged once when it starts (not once per refused connection).
    const first = await gw.waitForLog((l) => l.event === 112 && l.stage === 'admit');
    expect(first.nofile).toBe(256);
    expect(gw.logs.slice(logsBefore).filter((l) => l.event === 112).length).toBe(1);
    expect(gw.logs.slice(logsBefore).filter((l) => l.reason === 'fd_exhausted').length).toBe(0);

    // While the tunnels hold the descriptors: the process sleeps, it does not spin on EMFILE.
    const cpu0 = cpuSeconds(gw.pid);
    const t0 = performance.now();
    // A new client still gets an answer, with Retry-After.
    const probe = await attempt(gw.port, authority);
    probe.socket.destroy();
    expect(probe.status === 503 || probe.status === 'closed').toBe(true);
    const text = await scrape(gw.adminPort!);
    await new Promise((r) => setTimeout(r, 2_000)); // the measurement window, not synchronisation
    const cpu = cpuSeconds(gw.pid) - cpu0;
    const wallS = (performance.now() - t0) / 1000;
    expect(cpu).toBeLessThan(wallS / 2);

    expect(sampleSum(text, 'portcullis_descriptors_short')).toBe(1);
    const budget = sampleSum(text, 'portcullis_connection_limit', { limit: 'descriptors' });
    expect(budget).toBeGreaterThanOrEqual(count(200));
    expect(budget).toBeLessThan(128);
    expect(sampleSum(text, 'portcullis_connection_limit', { limit: 'total' })).toBe(budget);
    expect(sampleSum(text, 'portcullis_rejections_total', { reason: 'fd_exhausted' })).toBeGreaterThan(0);
    expect(sampleSum(text, 'portcullis_limit_hits_total', { limit: 'descriptors' })).toBeGreaterThan(0);

    // The clients leave: everything works again.
    for (const o of outcomes) o.socket.destroy();
    await expect.poll(() => metric(gw.adminPort, 'portcullis_client_connections'), { timeout: 10_000 }).toBe(0);
    const t = await openTunnel(gw.port, authority);
    expect(t.status).toBe(200);
    t.socket.write('still here');
    expect((await readBytes(t.socket, 10, t.rest)).toString()).toBe('still here');
    t.socket.destroy();
    // One quiet interval later the log says so, and the gauge drops.
    await gw.waitForLog((l) => l.event === 112 && l.recovered === true, 25_000);
    expect(await metric(gw.adminPort, 'portcullis_descriptors_short')).toBe(0);
    expect(gw.proc.exitCode).toBeNull();
  }, 60_000);
});

describe('a dial that gets EMFILE', () => {
  it('is answered 503 PCL_ERR_FD_EXHAUSTED (not a destination error), and nothing crashes', async () => {
    const echo = await startTcpEcho();
    cleanups.push(() => echo.close());
    // A real EMFILE: a process with 64 descriptors opens files until it has none left, then dials.
    const dist = resolve(import.meta.dirname, '../../dist');
    const script = `
      import { openSync } from 'node:fs';
      import { dial } from '${dist}/dial/index.js';
      import { networkRefusal } from '${dist}/proxy/refusal.js';
      const held = [];
      try { for (;;) held.push(openSync('/dev/null', 'r')); } catch (err) { if (err.code !== 'EMFILE') throw err; }
      try {
        await dial({ address: '127.0.0.1', family: 4 }, ${echo.port}, { timeoutMs: 2000 });
        console.log(JSON.stringify({ connected: true }));
      } catch (err) {
        const r = networkRefusal(err);
        console.log(JSON.stringify({ code: err.code, status: r.status, reason: r.reason, kind: r.kind }));
      }`;
    const r = await run('bash', ['-c', 'ulimit -n 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual({ code: 'PCL_ERR_FD_EXHAUSTED', status: 503, reason: 'fd_exhausted', kind: 'rejection' });
  });
});

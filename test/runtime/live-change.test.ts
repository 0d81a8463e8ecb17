/**
 * Issue 11, "what it must show": 200 established tunnels with traffic flowing through a relay
 * proxy (a real Squid) while the allowlist and the relay are changed live; every tunnel is still
 * alive afterwards (its echo keeps answering, no tunnel ended), and every new decision uses the
 * new rules: a newly denied host is refused, a new tunnel goes through the new relay.
 *
 * The change is applied by an `ApplyChange` function, once by editing the config file and sending
 * SIGHUP, once through the admin API (/api/v1/), with the same test body.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { metric } from '../helpers/metrics.js';
import { openTunnel, readBytes } from '../helpers/raw.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { requireBinary } from '../helpers/system.js';
import { startSquid, type SquidRelay } from '../helpers/squid.js';
import { apiClient, TOKEN } from '../admin/helpers.js';

const squid = requireBinary('squid');

const TUNNELS = 200;
/** Data-plane workers: the change must reach each of them over IPC. */
const WORKERS = 2;
/** Each tunnel sends a round trip this often while the change happens (about 2,000 a second in all). */
const PACE_MS = 100;
/** Bounds the traffic: at most this many round trips per tunnel (30 s at PACE_MS). */
const MAX_ROUNDS = 300;

/** Applies `next` to a running gateway and resolves once every process has it in force. */
export type ApplyChange = (gw: GatewayProcess, next: Record<string, unknown>) => Promise<void>;

/** Edit the config file and send SIGHUP; wait for the supervisor's and every worker's 'configuration reloaded'. */
const viaSighup: ApplyChange = async (gw, next) => {
  const before = gw.logs.length;
  const reloaded = (): number => gw.logs.slice(before).filter((r) => r.msg === 'configuration reloaded').length;
  await gw.reload(next);
  const refused = gw.logs.slice(before).find((r) => String(r.msg).startsWith('reload refused'));
  if (refused) throw new Error(`reload refused: ${JSON.stringify(refused)}`);
  await gw.waitForLog(() => reloaded() >= WORKERS + 1, 10_000);
};

/**
 * The same change as an operator makes it through the admin API: remove the host, set the new
 * relay. Each answer comes once the change is written; then wait for every process's reload.
 */
const viaApi: ApplyChange = async (gw, next) => {
  const api = apiClient(gw.adminPort, TOKEN);
  const before = gw.logs.length;
  const reloaded = (): number => gw.logs.slice(before).filter((r) => r.msg === 'configuration reloaded').length;
  const removed = await api('DELETE', '/api/v1/allow/hosts/soon-denied.test');
  expect(removed.status, JSON.stringify(removed.body)).toBe(200);
  const relay = await api('PUT', '/api/v1/relay', next.upstreamProxy);
  expect(relay.status, JSON.stringify(relay.body)).toBe(200);
  await gw.waitForLog(() => reloaded() >= 2 * (WORKERS + 1), 10_000);
};

const CHANGES: Array<[string, ApplyChange]> = [
  ['config file + SIGHUP', viaSighup],
  ['admin API', viaApi],
];

/** A tunnel with its echo loop: one round trip every PACE_MS until stopped. */
class EchoLoop {
  rounds = 0;
  error: Error | null = null;
  private stopped = false;
  private done: Promise<void> | null = null;
  private waiters: Array<{ atLeast: number; resolve: () => void }> = [];

  constructor(
    readonly id: number,
    readonly socket: Socket,
  ) {}

  start(): void {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped && this.rounds < MAX_ROUNDS) {
        const msg = `t${String(this.id).padStart(3, '0')}r${String(this.rounds).padStart(4, '0')}`;
        this.socket.write(msg);
        const back = (await readBytes(this.socket, msg.length)).toString();
        if (back !== msg) throw new Error(`tunnel ${this.id}: sent ${msg}, got ${back}`);
        this.rounds++;
        for (const w of this.waiters.filter((w) => this.rounds >= w.atLeast)) w.resolve();
        this.waiters = this.waiters.filter((w) => this.rounds < w.atLeast);
        // Pacing bounds the load; it is not waiting for anything.
        await new Promise((r) => setTimeout(r, PACE_MS));
      }
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      for (const w of this.waiters) w.resolve();
    }
  }

  /** Resolves once the loop has done `n` round trips (or failed: check `error`). */
  reached(n: number): Promise<void> {
    if (this.rounds >= n || this.error) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ atLeast: n, resolve }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

let echo: TestServer;
let relayA: SquidRelay;
let relayB: SquidRelay;

beforeAll(async () => {
  if (!squid) return;
  echo = await startTcpEcho();
  const hosts = { 'echo.test': '127.0.0.1', 'soon-denied.test': '127.0.0.1' };
  relayA = await startSquid({ users: { agent: 'relay-a-password' }, hosts });
  relayB = await startSquid({ hosts });
}, 60_000);

afterAll(async () => {
  await relayA?.stop();
  await relayB?.stop();
  await echo?.close();
});

function config(rules: string[], relay: Record<string, unknown>): Record<string, unknown> {
  return {
    proxy: { workers: WORKERS },
    allow: { presets: [], rules: [{ name: 'echo', hosts: rules, ports: [echo.port], allowPrivate: true }] },
    dns: { overrides: { 'echo.test': '127.0.0.1', 'soon-denied.test': '127.0.0.1' } },
    upstreamProxy: { proxies: [relay], connectMs: 5000 },
    log: { access: true },
    admin: { token: TOKEN },
  };
}

describe.skipIf(!squid).each(CHANGES)('200 live tunnels through a relay while the allowlist and the relay change (%s)', (_name, applyChange) => {
  it('every tunnel stays alive with traffic flowing; new decisions use the new allowlist and the new relay', async () => {
    const before = config(['echo.test', 'soon-denied.test'], { url: relayA.url, username: 'agent', password: 'relay-a-password' });
    const after = config(['echo.test'], { url: relayB.url });
    // Two workers on a busy 2-core machine can take a while to listen.
    // The relays serve every variant: count only this run's CONNECTs in their access logs.
    const connectsOf = (relay: SquidRelay): number => relay.accessLog().filter((l) => l.includes('CONNECT')).length;
    const baseA = connectsOf(relayA);
    const baseB = connectsOf(relayB);
    const gw = await startGateway(before, { listenTimeoutMs: 60_000 });
    const labelA = `127.0.0.1:${relayA.port}`;
    const labelB = `127.0.0.1:${relayB.port}`;
    const loops: EchoLoop[] = [];
    try {
      // Half to a host the change will deny, half to one it keeps.
      for (let i = 0; i < TUNNELS; i++) {
        const host = i % 2 === 0 ? 'echo.test' : 'soon-denied.test';
        const t = await openTunnel(gw.port, `${host}:${echo.port}`);
        expect(t.status, t.head).toBe(200);
        t.socket.on('error', () => {});
        const loop = new EchoLoop(i, t.socket);
        loops.push(loop);
        loop.start();
      }
      await Promise.all(loops.map((l) => l.reached(1)));
      expect(loops.filter((l) => l.error).map((l) => l.error?.message)).toEqual([]);
      expect(await metric(gw.adminPort, 'portcullis_open_tunnels')).toBe(TUNNELS);
      expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_connections_total', { proxy: labelA, kind: 'tunnel' })).toBe(TUNNELS);

      const logsBefore = gw.logs.length;
      const roundsAtChange = loops.map((l) => l.rounds);
      await applyChange(gw, after);

      // Every tunnel keeps answering after the change: two more round trips each.
      await Promise.all(loops.map((l, i) => l.reached((roundsAtChange[i] ?? 0) + 2)));
      expect(loops.filter((l) => l.error).map((l) => l.error?.message)).toEqual([]);
      // No tunnel ended (a tunnel's access record is written when it ends).
      expect(gw.logs.slice(logsBefore).filter((r) => r.event === 103)).toEqual([]);
      expect(await metric(gw.adminPort, 'portcullis_open_tunnels')).toBe(TUNNELS);

      // New decisions: the host the change removed is refused; a new tunnel goes through relay B.
      const denied = await openTunnel(gw.port, `soon-denied.test:${echo.port}`);
      expect(denied.status).toBe(403);
      denied.socket.destroy();
      expect(await gw.waitForLog((r) => r.target === `soon-denied.test:${echo.port}` && r.status === 403, 10_000, logsBefore)).toMatchObject({
        code: 'PCL_ERR_TARGET_FORBIDDEN',
      });
      const fresh = await openTunnel(gw.port, `echo.test:${echo.port}`);
      expect(fresh.status).toBe(200);
      fresh.socket.write('new-tunnel');
      expect((await readBytes(fresh.socket, 10, fresh.rest)).toString()).toBe('new-tunnel');
      fresh.socket.destroy();
      expect(await gw.waitForLog((r) => r.event === 103 && r.status === 200, 10_000, logsBefore)).toMatchObject({ upstreamProxy: labelB });
      await relayB.waitForAccess(() => connectsOf(relayB) - baseB >= 1);
      expect(await metric(gw.adminPort, 'portcullis_upstream_proxy_connections_total', { proxy: labelB, kind: 'tunnel' })).toBe(1);

      // The old tunnels went through relay A to the end: Squid A logs each as it closes.
      await Promise.all(loops.map((l) => l.stop()));
      for (const l of loops) l.socket.destroy();
      const connects = (): number => connectsOf(relayA) - baseA;
      await relayA.waitForAccess(() => connects() >= TUNNELS, 20_000);
      expect(connects()).toBe(TUNNELS);
      expect(connectsOf(relayB) - baseB).toBe(1);
    } finally {
      await Promise.all(loops.map((l) => l.stop()));
      for (const l of loops) l.socket.destroy();
      await gw.stop();
    }
  }, 120_000);
});

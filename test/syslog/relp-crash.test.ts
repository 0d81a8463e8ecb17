/**
 * Crash and outage test with rsyslog as the sender, as appliances' relays run it: two rsyslogd
 * children take the same 20,000 numbered messages into their imtcp inputs; one forwards them over
 * RELP (omrelp), the other over plain TCP (omfwd), both with an in-memory action queue that
 * retries for ever. The real `portcullis start` process is killed with SIGKILL at random moments,
 * at a random moment of each of four lives, while messages flow, and restarted on the same ports and spool; an emulator outage (503 + Retry-After)
 * falls in between. Afterwards every RELP message is at the emulator (duplicates counted and
 * printed); the plain-TCP loss is measured and printed, not failed on (it is what was in flight).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { freePort } from '../helpers/servers.js';
import { metric } from '../helpers/metrics.js';
import { requireBinary } from '../helpers/system.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import { DCR_SENTINEL, SYSLOG_STREAM, prepareSyslog } from './fixture.js';
import { startRsyslog, type Rsyslog } from './rsyslog.js';

const RSYSLOGD = requireBinary('rsyslogd');
const N = 20_000;
const KILLS = 4;
const CHUNK = 500;

let emu: AzureMonitorEmulator;
let config: Record<string, unknown>;
let relpPort = 0;
let tcpPort = 0;
const senders: Rsyslog[] = [];
let live: GatewayProcess | null = null;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  relpPort = await freePort();
  tcpPort = await freePort();
  const setup = await prepareSyslog(emu, {
    forwarder: { batch: { maxAgeMs: 200 }, pool: { threads: 1 } },
    syslog: {
      listeners: [
        { name: 'relp', protocol: 'relp', listen: `127.0.0.1:${relpPort}` },
        { name: 'tcp', protocol: 'tcp', listen: `127.0.0.1:${tcpPort}` },
      ],
    },
  });
  config = { ...setup.config, log: { level: 'info', access: false } };
}, 60_000);
afterAll(async () => {
  if (live && live.proc.exitCode === null && live.proc.signalCode === null) {
    live.proc.kill('SIGKILL');
    await live.exited;
  }
  await Promise.all(senders.map((s) => s.stop()));
  await emu?.close();
});

/** `kind n` of each record at the emulator: how many of each number, per kind. */
function tally(): { relp: Map<number, number>; tcp: Map<number, number>; tcpEnd: boolean } {
  const relp = new Map<number, number>();
  const tcp = new Map<number, number>();
  let tcpEnd = false;
  for (const r of emu.records({ target: DCR_SENTINEL, stream: SYSLOG_STREAM })) {
    const m = /^(relp|tcp) (\d+|end)$/.exec(String((r.record as { SyslogMessage?: unknown }).SyslogMessage));
    if (!m) continue;
    if (m[2] === 'end') tcpEnd = true;
    else {
      const into = m[1] === 'relp' ? relp : tcp;
      const n = Number(m[2]);
      into.set(n, (into.get(n) ?? 0) + 1);
    }
  }
  return { relp, tcp, tcpEnd };
}

/** [1,2,3,7] -> "1-3 7". */
function ranges(ns: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ns.length;) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === (ns[j] ?? 0) + 1) j++;
    out.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`);
    i = j + 1;
  }
  return out.join(' ');
}

const lines = (kind: string, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `<134>Mar  2 11:00:00 relay-01 app[42]: ${kind} ${from + i}`);

it.skipIf(!RSYSLOGD)(
  `rsyslog over RELP loses nothing across ${KILLS} SIGKILLs and an outage; plain TCP's loss is measured`,
  async () => {
    const queue = 'queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1" action.resumeInterval="1"';
    const relp = await startRsyslog(RSYSLOGD ?? '', {
      modules: 'module(load="omrelp")',
      action: `action(type="omrelp" target="127.0.0.1" port="${relpPort}" windowSize="256" ${queue})`,
    });
    senders.push(relp);
    const tcp = await startRsyslog(RSYSLOGD ?? '', { action: `action(type="omfwd" target="127.0.0.1" port="${tcpPort}" protocol="tcp" ${queue})` });
    senders.push(tcp);

    // Each life of the gateway gets its share of the messages, fed into rsyslog in paced chunks
    // (load shaping, not synchronisation) while the kill comes at a random moment.
    const share = N / (KILLS + 1);
    const feed = async (round: number): Promise<void> => {
      for (let from = round * share; from < (round + 1) * share; from += CHUNK) {
        await Promise.all([relp.send(lines('relp', from, from + CHUNK)), tcp.send(lines('tcp', from, from + CHUNK))]);
        await new Promise((r) => setTimeout(r, 150));
      }
    };

    let outage: { cancel(): void } | null = null;
    let gw: GatewayProcess | null = null;
    for (let round = 0; round <= KILLS; round++) {
      gw = await startGateway(config);
      live = gw;
      await gw.waitForLog((l) => l.msg === 'syslog collector listening', 30_000);
      if (round === 1) {
        outage = emu.faults.add({
          api: 'logsIngestion',
          target: DCR_SENTINEL,
          action: { kind: 'status', status: 503, retryAfterSec: 1 },
          times: Number.POSITIVE_INFINITY,
        });
      }
      if (round === 2) outage?.cancel();
      const feeding = feed(round);
      if (round < KILLS) {
        await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 1_200)));
        gw.proc.kill('SIGKILL');
        await gw.exited;
      }
      await feeding;
    }
    if (!gw) throw new Error('no gateway');
    const last = gw;
    // The marker leaves the TCP sender after every message before it.
    await tcp.send(['<134>Mar  2 11:00:00 relay-01 app[42]: tcp end']);

    await emu.store.waitFor(() => tally().relp.size >= N, 45_000, `${N} RELP messages`).catch(() => undefined);
    await emu.store.waitFor(() => tally().tcpEnd, 20_000, 'the TCP end marker').catch(() => undefined);
    // Nothing left in the spool: what has not arrived is lost, not late (printed if not so).
    const pendingNow = (): Promise<number> => metric(last.adminPort, 'portcullis_forwarder_spool_pending_entries');
    await expect
      .poll(pendingNow, { timeout: 15_000 })
      .toBe(0)
      .catch(() => undefined);
    const pending = await pendingNow();

    const t = tally();
    const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !t.relp.has(i));
    const dup = (m: Map<number, number>): number => [...m.values()].reduce((a, c) => a + c - 1, 0);
    const relpAcks = (await metric(last.adminPort, 'portcullis_syslog_relp_acks_total', { listener: 'relp' })) || 0;
    console.log(
      `relp crash test (${KILLS} SIGKILLs, one 503 outage): RELP ${N} sent, ${t.relp.size} arrived, ${missing.length} missing, ${dup(t.relp)} duplicates` +
        ` (last life acked ${relpAcks}); plain TCP ${N} sent, ${t.tcp.size} arrived, ${N - t.tcp.size} lost, ${dup(t.tcp)} duplicates; ${pending} spool entries pending`,
    );
    console.log('plain TCP lost (ranges):', ranges(Array.from({ length: N }, (_, i) => i).filter((i) => !t.tcp.has(i))));
    if (missing.length > 0) console.log('RELP missing:', JSON.stringify(missing.slice(0, 40)), relp.stderr().slice(-2000));
    expect(missing).toEqual([]);
    // The last life carried RELP traffic of its own: acks from the real process.
    expect(relpAcks).toBeGreaterThan(0);
    // The TCP loss is reported, whatever it is; the count must be a real one.
    expect(t.tcpEnd).toBe(true);
    expect(t.tcp.size).toBeGreaterThan(0);
    expect(t.tcp.size).toBeLessThanOrEqual(N);
    expect(emu.schemaViolations).toEqual([]);
    expect(await last.stop('SIGTERM')).toBe(0);
  },
  120_000,
);

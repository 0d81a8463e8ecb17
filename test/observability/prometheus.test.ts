/**
 * A real Prometheus scrapes a real cluster-mode gateway (2 workers) every second: the counts it
 * stores are the traffic we drove, summed across workers; the alert rules load and evaluate
 * without errors against the real series; every dashboard expression is valid PromQL there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { requireBinary } from '../helpers/system.js';
import {
  ALERTS_FILE,
  DASHBOARD_FILE,
  deniedTunnel,
  echoTunnel,
  gatewayConfig,
  startDestinations,
  startGateway,
  startPrometheus,
  type Destinations,
  type GatewayProcess,
  type PrometheusServer,
} from './helpers.js';

const prometheusBin = requireBinary('prometheus');
const JOB = 'portcullis';
const ALLOWED = 7;
const DENIED = 5;
const PAYLOAD = 64 * 1024;

let dest: Destinations | undefined;
let gw: GatewayProcess | undefined;
let prom: PrometheusServer | undefined;

beforeAll(async () => {
  if (!prometheusBin) return;
  dest = await startDestinations();
  gw = await startGateway(gatewayConfig(dest, { workers: 2 }));
  prom = await startPrometheus(prometheusBin, { job: JOB, targets: [`127.0.0.1:${gw.adminPort}`], ruleFiles: [ALERTS_FILE] });
}, 40_000);

afterAll(async () => {
  await prom?.stop();
  await gw?.stop('SIGKILL');
  await dest?.close();
});

/** Polls an instant query until `ok(value)` holds; returns the last value. */
async function until(q: string, ok: (v: number) => boolean, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  while (Date.now() < deadline) {
    const r = await prom!.query(q);
    last = r.length === 1 ? Number(r[0]!.value[1]) : NaN;
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${q}: last value ${last} after ${timeoutMs} ms; prometheus log: ${prom!.logs().slice(-1000)}`);
}

describe.skipIf(!prometheusBin)('Prometheus scraping a cluster-mode gateway', () => {
  it('stores the tunnels, rejections and bytes that went through the gateway', async () => {
    // Scraped and healthy before any traffic.
    expect(await until(`up{job="${JOB}"}`, (v) => v === 1)).toBe(1);
    expect(await until(`portcullis_ready{job="${JOB}"}`, (v) => v === 1)).toBe(1);
    expect(await until(`sum(portcullis_workers{job="${JOB}",state="listening"})`, (v) => v === 2)).toBe(2);

    const payload = randomBytes(PAYLOAD);
    // Prometheus sees no increase in a series' first sample: let it scrape the series created by
    // the first tunnel before the rest, so that rate() and histogram_quantile() have data.
    await echoTunnel(gw!, dest!, payload);
    await deniedTunnel(gw!);
    await until(`sum(portcullis_upstream_connect_seconds_count{job="${JOB}"})`, (v) => v === 1);
    await until(`sum(portcullis_rejections_total{job="${JOB}"})`, (v) => v === 1);
    for (let i = 1; i < ALLOWED; i++) await echoTunnel(gw!, dest!, payload);
    for (let i = 1; i < DENIED; i++) await deniedTunnel(gw!);

    expect(await until(`sum(portcullis_requests_total{job="${JOB}",verdict="allow",kind="tunnel"})`, (v) => v === ALLOWED)).toBe(ALLOWED);
    expect(await until(`sum(portcullis_rejections_total{job="${JOB}",reason="host_not_allowed"})`, (v) => v === DENIED)).toBe(DENIED);
    // Tunnels that the gateway denied are not counted as allowed, and vice versa.
    expect(await until(`sum(portcullis_requests_total{job="${JOB}",verdict="deny",kind="tunnel"})`, (v) => v === DENIED)).toBe(DENIED);
    const up = await until(`portcullis_bytes_total{job="${JOB}",direction="up",rule="echo"}`, (v) => v >= ALLOWED * PAYLOAD);
    expect(up).toBe(ALLOWED * PAYLOAD);
    const down = await until(`portcullis_bytes_total{job="${JOB}",direction="down",rule="echo"}`, (v) => v >= ALLOWED * PAYLOAD);
    expect(down).toBe(ALLOWED * PAYLOAD);
    expect(await until(`sum(portcullis_tunnel_duration_seconds_count{job="${JOB}",rule="echo"})`, (v) => v === ALLOWED)).toBe(ALLOWED);
    expect(await until(`portcullis_connected_clients{job="${JOB}"}`, (v) => v === 1)).toBe(1);
    expect(await until(`portcullis_ready{job="${JOB}"}`, (v) => v === 1)).toBe(1);
    expect(await until(`up{job="${JOB}"}`, (v) => v === 1)).toBe(1);
    // A p99 of the connect latency can be computed from what Prometheus stored.
    const p99 = await until(
      `histogram_quantile(0.99, sum by (le) (rate(portcullis_upstream_connect_seconds_bucket{job="${JOB}"}[1m])))`,
      (v) => Number.isFinite(v),
    );
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThanOrEqual(10);
  });

  it('loads the alert rules and evaluates every one of them without error', async () => {
    const deadline = Date.now() + 15_000;
    let rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> = [];
    for (;;) {
      const res = (await (await fetch(`http://127.0.0.1:${prom!.port}/api/v1/rules?type=alert`)).json()) as {
        data: { groups: Array<{ rules: typeof rules }> };
      };
      rules = res.data.groups.flatMap((g) => g.rules);
      if (rules.length > 0 && rules.every((r) => !r.lastEvaluation.startsWith('0001'))) break;
      if (Date.now() > deadline) throw new Error(`rules not evaluated: ${JSON.stringify(rules)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const names = rules.map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining(['PortcullisDown', 'PortcullisNotReady', 'PortcullisRejectionSpike', 'PortcullisUpstreamErrors', 'PortcullisEventLoopLag', 'PortcullisWorkerRestarts']));
    expect(rules.filter((r) => r.health !== 'ok')).toEqual([]);
    // A healthy gateway: none of them is pending or firing.
    const alerts = (await (await fetch(`http://127.0.0.1:${prom!.port}/api/v1/alerts`)).json()) as { data: { alerts: Array<{ labels: { alertname: string } }> } };
    expect(alerts.data.alerts.map((a) => a.labels.alertname)).toEqual([]);
  });

  it('accepts every dashboard expression, and the main panels have data', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const MUST_HAVE_DATA = ['Active client connections', 'Tunnels/s by verdict', 'Rejections/s by reason', 'Bytes/s by rule (up above, down below)', 'Open tunnels by rule', 'Upstream connect latency', 'Workers', 'Event-loop lag', 'CPU', 'Memory'];
    let failures: string[] = [];
    let empty: string[] = [];
    // rate() needs two samples of a series inside its window: allow a few scrapes.
    for (const deadline = Date.now() + 10_000; ; ) {
      failures = [];
      empty = [];
      for (const p of dash.panels) {
        for (const t of p.targets ?? []) {
          const q = t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', JOB).replaceAll('$instance', '.*');
          const r = await prom!.queryRaw(q);
          if (r.status !== 'success') failures.push(`${p.title}: ${q}: ${r.error}`);
          else if ((r.data as { result: unknown[] }).result.length === 0) empty.push(p.title);
        }
      }
      if (failures.length > 0 || !MUST_HAVE_DATA.some((t) => empty.includes(t)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(failures).toEqual([]);
    expect(MUST_HAVE_DATA.filter((t) => empty.includes(t))).toEqual([]);
  });
});

/**
 * A real Prometheus scrapes a real cluster-mode gateway (2 workers) every second: the counts it
 * stores are the traffic we drove, summed across workers; the alert rules load and evaluate
 * without errors against the real series, and one of them goes off, with its labels, when its
 * condition happens; every dashboard expression is valid PromQL there.
 *
 * The tests wait for one thing only: a scrape that Prometheus made after the gateway had counted
 * the traffic (scrapedAfter). The values are asserted on what Prometheus then returns, as deltas
 * over the test's own traffic, so each test can run alone (`-t`) or after the others.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { requireBinary } from '../helpers/system.js';
import type { LogRecord } from '../helpers/gateway.js';
import {
  ALERTS_FILE,
  DASHBOARD_FILE,
  deniedTunnel,
  echoTunnel,
  gatewayConfig,
  startDestinations,
  startGateway,
  instantValue,
  scrapedAfter as scrapedAfterJob,
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

const value = instantValue;
const scrapedAfter = (prom: PrometheusServer, afterMs: number): Promise<number> => scrapedAfterJob(prom, JOB, afterMs);

/** Waits until the gateway has logged `n` records matching `match` since log index `from`. */
async function records(gw: GatewayProcess, from: number, n: number, match: (r: LogRecord) => boolean): Promise<void> {
  const count = (): number => gw.logs.slice(from).filter(match).length;
  if (count() >= n) return;
  await gw.waitForLog(() => count() >= n);
}

const isAllowedEcho = (r: LogRecord): boolean => r.event === 103 && r.rule === 'echo';
const isDenied = (r: LogRecord): boolean => r.verdict === 'deny' && r.reason === 'host_not_allowed';

describe.skipIf(!prometheusBin)('Prometheus scraping a cluster-mode gateway', () => {
  let dest: Destinations | undefined;
  let gw: GatewayProcess;
  let prom: PrometheusServer;

  beforeAll(async () => {
    dest = await startDestinations();
    gw = await startGateway(gatewayConfig(dest, { workers: 2 }));
    prom = await startPrometheus(prometheusBin!, { job: JOB, targets: [`127.0.0.1:${gw.adminPort}`], ruleFiles: [ALERTS_FILE] });
  }, 40_000);

  afterAll(async () => {
    await prom?.stop();
    await gw?.stop('SIGKILL');
    await dest?.close();
  });

  it('stores the tunnels, rejections and bytes that went through the gateway', async () => {
    // Scraped and healthy before any traffic (the gateway announced itself once both workers listened).
    const start = await scrapedAfter(prom, Date.now());
    expect(await value(prom, `up{job="${JOB}"}`, start)).toBe(1);
    expect(await value(prom, `portcullis_ready{job="${JOB}"}`, start)).toBe(1);
    expect(await value(prom, `sum(portcullis_workers{job="${JOB}",state="listening"})`, start)).toBe(2);

    const Q = {
      allowed: `sum(portcullis_requests_total{job="${JOB}",verdict="allow",kind="tunnel"})`,
      deniedTunnels: `sum(portcullis_requests_total{job="${JOB}",verdict="deny",kind="tunnel"})`,
      hostNotAllowed: `sum(portcullis_rejections_total{job="${JOB}",reason="host_not_allowed"})`,
      up: `sum(portcullis_bytes_total{job="${JOB}",direction="up",rule="echo"})`,
      down: `sum(portcullis_bytes_total{job="${JOB}",direction="down",rule="echo"})`,
      durations: `sum(portcullis_tunnel_duration_seconds_count{job="${JOB}",rule="echo"})`,
    };
    const before: Record<string, number> = {};
    for (const [k, q] of Object.entries(Q)) before[k] = await value(prom, q, start);
    let end = start;
    const delta = async (k: keyof typeof Q): Promise<number> => (await value(prom, Q[k], end)) - (before[k] ?? 0);
    const from = gw.logs.length;

    const payload = randomBytes(PAYLOAD);
    // Prometheus sees no increase in a series' first sample: let it scrape the series created by
    // the first tunnel before the rest, so that rate() and histogram_quantile() have data.
    await echoTunnel(gw, dest!, payload);
    await deniedTunnel(gw);
    await records(gw, from, 1, isAllowedEcho);
    await scrapedAfter(prom, Date.now());
    for (let i = 1; i < ALLOWED; i++) await echoTunnel(gw, dest!, payload);
    for (let i = 1; i < DENIED; i++) await deniedTunnel(gw);
    // Metrics are counted before the access record is logged: once all are logged, one more scrape.
    await records(gw, from, ALLOWED, isAllowedEcho);
    await records(gw, from, DENIED, isDenied);
    end = await scrapedAfter(prom, Date.now());

    expect(await delta('allowed')).toBe(ALLOWED);
    expect(await delta('hostNotAllowed')).toBe(DENIED);
    // Tunnels that the gateway denied are not counted as allowed, and vice versa.
    expect(await delta('deniedTunnels')).toBe(DENIED);
    expect(await delta('up')).toBe(ALLOWED * PAYLOAD);
    expect(await delta('down')).toBe(ALLOWED * PAYLOAD);
    expect(await delta('durations')).toBe(ALLOWED);
    expect(await value(prom, `portcullis_connected_clients{job="${JOB}"}`, end)).toBe(1);
    expect(await value(prom, `portcullis_ready{job="${JOB}"}`, end)).toBe(1);
    expect(await value(prom, `up{job="${JOB}"}`, end)).toBe(1);
    // A p99 of the connect latency can be computed from what Prometheus stored.
    const p99 = await value(prom, `histogram_quantile(0.99, sum by (le) (rate(portcullis_upstream_connect_seconds_bucket{job="${JOB}"}[1m])))`, end);
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThanOrEqual(10);
  });

  it('loads the alert rules and evaluates every one of them without error', async () => {
    // Rules evaluated before the first scrape see no target (PortcullisTargetMissing would pend):
    // judge them on an evaluation made after the gateway was scraped.
    const scraped = await scrapedAfter(prom, Date.now());
    const deadline = Date.now() + 15_000;
    let rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> = [];
    // Waits for: every rule evaluated after that scrape. Asserts: their health, and no alert.
    for (;;) {
      const res = (await (await fetch(`http://127.0.0.1:${prom.port}/api/v1/rules?type=alert`)).json()) as {
        data: { groups: Array<{ rules: typeof rules }> };
      };
      rules = res.data.groups.flatMap((g) => g.rules);
      if (rules.length > 0 && rules.every((r) => Date.parse(r.lastEvaluation) > scraped)) break;
      if (Date.now() > deadline) throw new Error(`rules not evaluated: ${JSON.stringify(rules)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const names = rules.map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'PortcullisDown',
        'PortcullisNotReady',
        'PortcullisRejectionSpike',
        'PortcullisUpstreamErrors',
        'PortcullisEventLoopLag',
        'PortcullisWorkerRestarts',
      ]),
    );
    expect(rules.filter((r) => r.health !== 'ok')).toEqual([]);
    // A healthy gateway: none of them is pending or firing.
    const alerts = (await (await fetch(`http://127.0.0.1:${prom.port}/api/v1/alerts`)).json()) as {
      data: { alerts: Array<{ labels: { alertname: string } }> };
    };
    expect(alerts.data.alerts.map((a) => a.labels.alertname)).toEqual([]);
  });

  it('accepts every dashboard expression, and the main panels have data', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const MUST_HAVE_DATA = [
      'Active client connections',
      'Tunnels/s by verdict',
      'Rejections/s by reason',
      'Bytes/s by rule (up above, down below)',
      'Open tunnels by rule',
      'Upstream connect latency',
      'Workers',
      'Event-loop lag',
      'CPU',
      'Memory',
    ];
    // This test's own traffic, then two scrapes after it: rate() needs two samples of a series.
    const from = gw.logs.length;
    await echoTunnel(gw, dest!, randomBytes(1000));
    await deniedTunnel(gw);
    await records(gw, from, 1, isAllowedEcho);
    await scrapedAfter(prom, Date.now());
    const at = await scrapedAfter(prom, Date.now());

    const failures: string[] = [];
    const empty: string[] = [];
    for (const p of dash.panels) {
      for (const t of p.targets ?? []) {
        const q = t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', JOB).replaceAll('$instance', '.*');
        const r = await prom.queryRaw(q, at);
        if (r.status !== 'success') failures.push(`${p.title}: ${q}: ${r.error}`);
        else if ((r.data as { result: unknown[] }).result.length === 0) empty.push(p.title);
      }
    }
    expect(failures).toEqual([]);
    expect(MUST_HAVE_DATA.filter((t) => empty.includes(t))).toEqual([]);
  });
});

describe.skipIf(!prometheusBin)('an alert rule against a real Prometheus', () => {
  // A gateway and a Prometheus of its own: the alert this raises must not leak into the
  // "a healthy gateway raises none" check above.
  let dest: Destinations | undefined;
  let gw: GatewayProcess;
  let prom: PrometheusServer;

  beforeAll(async () => {
    dest = await startDestinations();
    gw = await startGateway(gatewayConfig(dest));
    prom = await startPrometheus(prometheusBin!, { job: JOB, targets: [`127.0.0.1:${gw.adminPort}`], ruleFiles: [ALERTS_FILE] });
  }, 40_000);

  afterAll(async () => {
    await prom?.stop();
    await gw?.stop('SIGKILL');
    await dest?.close();
  });

  it('PortcullisConfigReloadRefused goes pending with the instance, job and severity labels after a refused reload', async () => {
    const broken = { allow: { rules: [{ name: 'bad', hosts: ['*'], ports: [70000] }] } };
    // increase() sees nothing in a series' first sample: one refusal creates the series, the next
    // one is the increase the rule looks for.
    await gw.reload(broken);
    await scrapedAfter(prom, Date.now());
    await gw.reload(broken);
    expect(gw.logs.filter((l) => String(l.msg).startsWith('reload refused'))).toHaveLength(2);
    await scrapedAfter(prom, Date.now());

    type Alert = { labels: Record<string, string>; state: string };
    const deadline = Date.now() + 15_000;
    let alerts: Alert[] = [];
    // Waits for: the rule to have evaluated the new sample (1 s interval). Asserts: state and labels.
    while (!alerts.some((a) => a.labels.alertname === 'PortcullisConfigReloadRefused') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      alerts = ((await (await fetch(`http://127.0.0.1:${prom.port}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } }).data.alerts;
    }
    // Only this rule's alerts (a loaded test machine may also raise PortcullisEventLoopLag).
    expect(alerts.filter((a) => a.labels.alertname === 'PortcullisConfigReloadRefused')).toEqual([
      expect.objectContaining({
        labels: { alertname: 'PortcullisConfigReloadRefused', severity: 'warning', job: JOB, instance: `127.0.0.1:${gw.adminPort}`, result: 'refused' },
        // `for: 1m`: pending first; firing a minute later is Prometheus's part, tested by promtool (rules.test.ts).
        state: 'pending',
      }),
    ]);
  });
});

/**
 * The real /metrics output of a running gateway, single-process and cluster: it passes promtool's
 * exposition lint, it counts the traffic we drove (summed across workers in cluster mode), and
 * every metric and label the dashboard, the alert rules and the docs name really exists in it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { requireBinary } from '../helpers/system.js';
import { requireNativeRelay } from '../helpers/relay.js';
import {
  ALERTS_FILE,
  DASHBOARD_FILE,
  METRICS_DOC,
  driveEveryKindOfTraffic,
  gatewayConfig,
  metricsInExpr,
  parseExposition,
  sampleSum,
  scrape,
  startDestinations,
  startGateway,
  type Destinations,
  type GatewayProcess,
  type MetricUse,
} from './helpers.js';

const promtool = requireBinary('promtool');
/** Under CI=true a missing native build fails here; elsewhere the tunnels go through the JS relay. */
const native = requireNativeRelay();
const MODES = [
  { name: 'single process', workers: 1 },
  { name: 'cluster (2 workers)', workers: 2 },
] as const;

let dest: Destinations;
const gateways: GatewayProcess[] = [];
const scrapes = new Map<number, string>();

beforeAll(async () => {
  dest = await startDestinations();
  await Promise.all(
    MODES.map(async ({ workers }) => {
      const config = gatewayConfig(dest, { workers, headersMs: 2_000, maxConnectionsPerClient: 10 });
      const gw = await startGateway(config);
      gateways.push(gw);
      await driveEveryKindOfTraffic(gw, dest, workers, config);
      scrapes.set(workers, await scrape(gw.adminPort!));
    }),
  );
}, 45_000);

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
  await dest?.close();
});

function promtoolCheckMetrics(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(promtool!, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.once('error', reject);
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    p.stdin.end(text);
  });
}

/** Every metric selector in the dashboard (panels, annotations, variables) and the alert rules. */
function usedMetrics(): Array<MetricUse & { where: string }> {
  const uses: Array<MetricUse & { where: string }> = [];
  const dash = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    annotations: { list: Array<{ name: string; expr?: string }> };
    templating: { list: Array<{ name: string; query: { query: string } | string }> };
  };
  for (const p of dash.panels) for (const t of p.targets ?? []) for (const u of metricsInExpr(t.expr)) uses.push({ ...u, where: `panel "${p.title}"` });
  for (const a of dash.annotations.list) if (a.expr) for (const u of metricsInExpr(a.expr)) uses.push({ ...u, where: `annotation "${a.name}"` });
  for (const v of dash.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((.*),\s*[a-zA-Z_]+\)$/.exec(q);
    expect(m, `variable ${v.name}: ${q}`).not.toBeNull();
    for (const u of metricsInExpr(m![1]!)) uses.push({ ...u, where: `variable ${v.name}` });
  }
  const rules = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  for (const g of rules.groups) for (const r of g.rules) for (const u of metricsInExpr(r.expr)) uses.push({ ...u, where: `alert ${r.alert}` });
  return uses;
}

describe.each(MODES)('/metrics of a running gateway, $name', ({ workers }) => {
  it.skipIf(!promtool)('passes `promtool check metrics`', async () => {
    const text = scrapes.get(workers)!;
    const r = await promtoolCheckMetrics(text);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('counts the traffic that was driven through it', () => {
    const text = scrapes.get(workers)!;
    const v = (name: string, labels: Record<string, string> = {}): number => sampleSum(text, name, labels);
    expect(v('portcullis_requests_total', { kind: 'tunnel', verdict: 'allow', rule: 'echo' })).toBe(3);
    expect(v('portcullis_bytes_total', { direction: 'up', rule: 'echo' })).toBe(3000);
    expect(v('portcullis_bytes_total', { direction: 'down', rule: 'echo' })).toBe(3000);
    expect(v('portcullis_requests_total', { kind: 'http', verdict: 'allow', rule: 'web' })).toBe(1);
    expect(v('portcullis_rejections_total', { reason: 'host_not_allowed' })).toBe(2);
    expect(v('portcullis_errors_total', { reason: 'connect_refused' })).toBe(1);
    expect(v('portcullis_requests_total', { verdict: 'error', reason: 'connect_refused', rule: 'closed' })).toBe(1);
    expect(v('portcullis_limit_hits_total', { limit: 'client' })).toBeGreaterThanOrEqual(1);
    expect(v('portcullis_rejections_total', { reason: 'limit_client' })).toBe(v('portcullis_limit_hits_total', { limit: 'client' }));
    expect(v('portcullis_timeouts_total', { kind: 'header' })).toBeGreaterThanOrEqual(1);
    expect(v('portcullis_tunnel_duration_seconds_count', { rule: 'echo' })).toBe(3);
    // Every tunnel went through the relay this machine has: native wherever it is built (always on CI).
    expect(v('portcullis_tunnels_relayed_total', { relay: native.available ? 'native' : 'js' })).toBe(3);
    expect(v('portcullis_upstream_connect_seconds_count', { rule: 'echo' })).toBe(3);
    expect(v('portcullis_open_tunnels', { rule: 'echo' })).toBe(0);
    expect(v('portcullis_config_reloads_total', { result: 'ok' })).toBe(1);
    expect(v('portcullis_ready')).toBe(1);
    expect(v('portcullis_workers', { state: 'listening' })).toBe(workers);
    expect(v('portcullis_worker_restarts_total')).toBe(0);
    // One client address (127.0.0.1), whichever worker served it: a union, not a sum.
    expect(v('portcullis_connected_clients')).toBe(1);
  });

  it('has every metric and label the dashboard and the alert rules use', () => {
    const families = parseExposition(scrapes.get(workers)!);
    const uses = usedMetrics();
    const distinct = new Set(uses.map((u) => u.metric));
    expect(distinct.size).toBeGreaterThan(20); // the extractor found the expressions
    const problems: string[] = [];
    for (const u of uses) {
      const TARGET_LABELS = ['job', 'instance'];
      if (u.metric === 'up') {
        for (const l of u.labels) if (!TARGET_LABELS.includes(l)) problems.push(`${u.where}: up has no label ${l}`);
        continue;
      }
      let fam = families.get(u.metric);
      const hist = /^(.*)_(bucket|sum|count)$/.exec(u.metric);
      if (!fam && hist && families.get(hist[1]!)?.type === 'histogram') fam = families.get(hist[1]!);
      if (!fam) {
        problems.push(`${u.where}: ${u.metric} is not exported`);
        continue;
      }
      if (/_bucket$/.test(u.metric) && fam.type !== 'histogram') problems.push(`${u.where}: ${u.metric} is not a histogram`);
      for (const l of u.labels) {
        if (!TARGET_LABELS.includes(l) && !fam.labels.has(l)) problems.push(`${u.where}: ${u.metric} has no label ${l} (has ${[...fam.labels].join(', ') || 'none'})`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('is fully described in docs/metrics.md', () => {
    const doc = readFileSync(METRICS_DOC, 'utf8');
    const families = parseExposition(scrapes.get(workers)!);
    const missing = [...families.keys()].filter((name) => !doc.includes('`' + name + '`'));
    expect(missing).toEqual([]);
  });
});

describe('metricsInExpr', () => {
  it('finds selectors and their matcher labels, not functions, keywords or durations', () => {
    const uses = metricsInExpr(
      'sum by (job, instance) (rate(a_total{reason="x",kind=~"y"}[5m] offset 1h)) / on (job) group_left b > 3 * histogram_quantile(0.99, sum by (le) (rate(c_bucket[$__rate_interval]))) and up{job="p"} == 0 or vector(1e3)',
    );
    expect(uses).toEqual([
      { metric: 'a_total', labels: ['reason', 'kind'] },
      { metric: 'b', labels: [] },
      { metric: 'c_bucket', labels: [] },
      { metric: 'up', labels: ['job'] },
    ]);
  });
});

/**
 * The real /metrics output of a running gateway, single-process and cluster: it passes promtool's
 * exposition lint, it counts the traffic we drove (summed across workers in cluster mode), and
 * every metric and label the dashboard, the alert rules and the docs name really exists in it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { requireBinary } from '../helpers/system.js';
import { requireNativeRelay } from '../helpers/relay.js';
import {
  METRICS_DOC,
  driveEveryKindOfTraffic,
  gatewayConfig,
  metricsInExpr,
  missingFromScrape,
  parseExposition,
  promtoolCheckMetrics,
  sampleSum,
  scrape,
  startDestinations,
  startGateway,
  usedMetrics,
  type Destinations,
  type GatewayProcess,
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

describe.each(MODES)('/metrics of a running gateway, $name', ({ workers }) => {
  it.skipIf(!promtool)('passes `promtool check metrics`', async () => {
    const text = scrapes.get(workers)!;
    const r = await promtoolCheckMetrics(promtool!, text);
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
    if (native.available) {
      // One relay thread per process, each with the default slot limit: summed over workers.
      expect(v('portcullis_relay_slot_limit')).toBe(65536 * workers);
      expect(v('portcullis_relay_tunnels')).toBe(0);
      expect(v('portcullis_relay_pending_bytes')).toBe(0);
      expect(v('portcullis_relay_loop_iterations_total')).toBeGreaterThan(0);
    }
    expect(v('portcullis_upstream_connect_seconds_count', { rule: 'echo' })).toBe(3);
    expect(v('portcullis_open_tunnels', { rule: 'echo' })).toBe(0);
    expect(v('portcullis_config_reloads_total', { result: 'ok' })).toBe(1);
    expect(v('portcullis_ready')).toBe(1);
    expect(v('portcullis_workers', { state: 'listening' })).toBe(workers);
    expect(v('portcullis_worker_restarts_total')).toBe(0);
    // One client address (127.0.0.1), whichever worker served it: a union, not a sum.
    expect(v('portcullis_connected_clients')).toBe(1);
  });

  it('has every metric and label the dashboard and the alert rules use (forwarder ones: forwarder-scrape.test.ts; syslog ones: syslog-metrics.unit.test.ts)', () => {
    const families = parseExposition(scrapes.get(workers)!);
    // This gateway has no forwarder or syslog section, so it exports no portcullis_forwarder_* or portcullis_syslog_* series.
    const uses = usedMetrics().filter((u) => !u.metric.startsWith('portcullis_forwarder_') && !u.metric.startsWith('portcullis_syslog_'));
    const distinct = new Set(uses.map((u) => u.metric));
    expect(distinct.size).toBeGreaterThan(20); // the extractor found the expressions
    expect(missingFromScrape(uses, families)).toEqual([]);
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

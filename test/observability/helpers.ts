/**
 * Shared pieces of the observability tests: a gateway with an echo destination, traffic that
 * makes every labelled metric family appear, a /metrics parser, a PromQL metric-name extractor
 * and a real Prometheus server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { freePort, startHttpServer, startTcpEcho, type TestServer } from '../helpers/servers.js';
import { openTunnel, rawExchange, readBytes, statusOf } from '../helpers/raw.js';
import { metric, sampleSum, scrape, waitForMetric } from '../helpers/metrics.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const ALERTS_FILE = join(ROOT, 'config/prometheus/portcullis-alerts.yml');
export const ALERTS_TEST_FILE = join(ROOT, 'config/prometheus/portcullis-alerts.test.yml');
export const PROMETHEUS_EXAMPLE = join(ROOT, 'config/prometheus/prometheus.example.yml');
export const DASHBOARD_FILE = join(ROOT, 'config/grafana/portcullis-dashboard.json');
export const METRICS_DOC = join(ROOT, 'docs/metrics.md');

export { freePort };

export interface Destinations {
  echo: TestServer;
  web: TestServer;
  closedPort: number;
  close(): Promise<void>;
}

export async function startDestinations(): Promise<Destinations> {
  const echo = await startTcpEcho();
  const web = await startHttpServer();
  const closedPort = await freePort();
  return { echo, web, closedPort, close: async () => void (await Promise.all([echo.close(), web.close()])) };
}

/** Gateway config: rules `echo` (TCP echo), `web` (plain HTTP), `closed` (nothing listens). */
export function gatewayConfig(
  d: Destinations,
  extra: { workers?: number; headersMs?: number; maxConnectionsPerClient?: number } = {},
): Record<string, unknown> {
  return {
    proxy: {
      workers: extra.workers ?? 1,
      timeouts: { headersMs: extra.headersMs ?? 10_000 },
      limits: { maxConnectionsPerClient: extra.maxConnectionsPerClient ?? 1000 },
      drainMs: 2_000,
    },
    allow: {
      presets: [],
      rules: [
        { name: 'echo', hosts: ['echo.example.com'], ports: [d.echo.port], allowPrivate: true },
        { name: 'web', hosts: ['web.example.com'], ports: [d.web.port], allowPrivate: true },
        { name: 'closed', hosts: ['closed.example.com'], ports: [d.closedPort], allowPrivate: true },
      ],
    },
    dns: { overrides: { 'echo.example.com': '127.0.0.1', 'web.example.com': '127.0.0.1', 'closed.example.com': '127.0.0.1' } },
  };
}

/** One tunnel through the echo rule: send `payload`, read it back, close. */
export async function echoTunnel(gw: GatewayProcess, d: Destinations, payload: Buffer): Promise<void> {
  const t = await openTunnel(gw.port, `echo.example.com:${d.echo.port}`);
  try {
    if (t.status !== 200) throw new Error(`echo tunnel refused: ${t.head}`);
    t.socket.write(payload);
    const back = await readBytes(t.socket, payload.length, t.rest);
    if (!back.equals(payload)) throw new Error('echo returned different bytes');
  } finally {
    t.socket.destroy();
  }
}

/** A tunnel to a host outside the allowlist: must get 403. */
export async function deniedTunnel(gw: GatewayProcess, host = 'not-allowed.example.org:443'): Promise<void> {
  const t = await openTunnel(gw.port, host);
  t.socket.destroy();
  if (t.status !== 403) throw new Error(`expected 403 for ${host}, got ${t.head}`);
}

function connectIdle(port: number): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => res(s));
    s.on('error', rej);
  });
}

/**
 * Traffic that makes every labelled family the gateway exports appear: allowed and denied
 * tunnels, a plain-HTTP request, a connect error, per-client limit refusals, a header timeout
 * and a config reload. The gateway must run `gatewayConfig(d, { headersMs: 2_000,
 * maxConnectionsPerClient: 10, workers })`: the idle connections that fill the per-client
 * allowance must outlive the 429 attempts, and the header timeout then closes them.
 */
export async function driveEveryKindOfTraffic(gw: GatewayProcess, d: Destinations, workers: number, config: Record<string, unknown>): Promise<void> {
  for (let i = 0; i < 3; i++) await echoTunnel(gw, d, Buffer.alloc(1000, i));
  for (let i = 0; i < 2; i++) await deniedTunnel(gw);
  const web = await rawExchange(
    gw.port,
    `GET http://web.example.com:${d.web.port}/x HTTP/1.1\r\nHost: web.example.com:${d.web.port}\r\nConnection: close\r\n\r\n`,
  );
  if (statusOf(web.text) !== 200) throw new Error(`plain-HTTP request failed: ${web.text.slice(0, 200)}`);
  const closed = await openTunnel(gw.port, `closed.example.com:${d.closedPort}`);
  closed.socket.destroy();
  if (closed.status !== 502) throw new Error(`expected 502 from a closed port, got ${closed.head}`);

  // Fill every worker's per-client allowance (10), then ask: 429.
  const idle: Socket[] = [];
  try {
    for (let i = 0; i < 10 * workers + 2; i++) idle.push(await connectIdle(gw.port));
    // A client's 'connect' comes before the gateway's accept: wait until it counts them all.
    await waitForMetric(gw.adminPort, 'portcullis_client_connections', {}, (n) => n >= idle.length);
    let limited = 0;
    for (let i = 0; i < 6 && limited < 2; i++) {
      // A port no rule lists: when a worker is not at its cap this is a quick 403, not a tunnel.
      const r = await rawExchange(gw.port, 'CONNECT echo.example.com:1 HTTP/1.1\r\n\r\n', 3_000);
      if (statusOf(r.text) === 429) limited++;
    }
    if (limited === 0) throw new Error('no 429 past maxConnectionsPerClient');
  } finally {
    for (const s of idle) s.destroy();
  }
  // Every one of them released before the next step, or it would meet the per-client limit.
  await waitForMetric(gw.adminPort, 'portcullis_client_connections', {}, (n) => n === 0);

  // Request headers never finished: 408 after headersMs.
  const slow = await rawExchange(gw.port, 'CONNECT echo.example.com:1 HTTP/1.1\r\nX-Slow: ', 5_000);
  if (statusOf(slow.text) !== 408) throw new Error(`expected 408 for slow headers, got ${slow.text.slice(0, 100)}`);

  await gw.reload(config);
  // Each connection's access record (and its metrics) is written as it closes.
  await waitForMetric(gw.adminPort, 'portcullis_client_connections', {}, (n) => n === 0);
}

export interface Family {
  type: string;
  /** Label names seen on the family's samples (le excluded). */
  labels: Set<string>;
  samples: number;
}

/** Families of a Prometheus text exposition, by name (histogram suffixes folded into the family). */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      families.set(type[1]!, { type: type[2]!, labels: new Set(), samples: 0 });
      continue;
    }
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) continue;
    let fam = families.get(m[1]!);
    if (!fam) {
      const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
      fam = families.get(base);
    }
    if (!fam) continue;
    fam.samples++;
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) if (l[1] !== 'le') fam.labels.add(l[1]!);
  }
  return families;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan']);

export interface MetricUse {
  metric: string;
  /** Label names in the selector's matchers. */
  labels: string[];
}

/**
 * Metric selectors in a PromQL expression: identifiers that are not functions, aggregation
 * modifiers, keywords, label lists or strings, with the label names of their matchers.
 */
export function metricsInExpr(expr: string): MetricUse[] {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/'(?:[^'\\]|\\.)*'/g, "''");
  e = e.replace(/\[[^\]]*\]/g, ' '); // range and subquery selectors, $__rate_interval
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const uses: MetricUse[] = [];
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?/g;
  for (let m; (m = re.exec(e));) {
    const [, name, matchers, call] = m;
    if (call && !matchers) continue; // function or aggregation
    if (PROMQL_WORDS.has(name!.toLowerCase())) continue;
    if (m.index > 0 && /[0-9.]/.test(e[m.index - 1]!)) continue; // the m of 5m, the e of 1e9
    uses.push({ metric: name!, labels: [...(matchers ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!) });
  }
  // Bare label matchers ({__name__=...}) are not used here; a `{` without a name would be missed.
  return uses;
}

export interface PrometheusServer {
  port: number;
  proc: ChildProcess;
  /** Instant query, now or at `atMs` (epoch ms); returns the result vector. */
  query(q: string, atMs?: number): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** Raw API answer for a query (status, errorType, error). */
  queryRaw(q: string, atMs?: number): Promise<{ status: string; error?: string; data?: unknown }>;
  stop(): Promise<void>;
  logs(): string;
}

/** A real Prometheus on 127.0.0.1:<free port> scraping `targets` every second under `job`. */
export async function startPrometheus(binary: string, opts: { job: string; targets: string[]; ruleFiles?: string[] }): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-prom-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' },
      ...(opts.ruleFiles ? { rule_files: opts.ruleFiles } : {}),
      scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: opts.targets }] }],
    }),
  );
  let logs = '';
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = spawn(
      binary,
      [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout.on('data', (c: Buffer) => (logs += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (logs += c.toString()));
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const stop = async (): Promise<void> => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
    };
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (Date.now() < deadline && proc.exitCode === null) {
      try {
        if ((await fetch(`${base}/-/ready`)).status === 200) {
          ready = true;
          break;
        }
      } catch {
        /* not yet listening */
      }
      // Polling /-/ready: Prometheus announces readiness only there (its log runs at warn level).
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) {
      await stop();
      if (attempt < 2 && /address already in use/.test(logs)) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`prometheus did not become ready: ${logs.slice(-2000)}`);
    }
    const queryRaw = async (q: string, atMs?: number): Promise<{ status: string; error?: string; data?: unknown }> => {
      const at = atMs === undefined ? '' : `&time=${atMs / 1000}`;
      const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}${at}`);
      return (await res.json()) as { status: string; error?: string; data?: unknown };
    };
    return {
      port,
      proc,
      queryRaw,
      async query(q, atMs) {
        const r = await queryRaw(q, atMs);
        if (r.status !== 'success') throw new Error(`query ${q} failed: ${r.error}`);
        return (r.data as { result: Array<{ metric: Record<string, string>; value: [number, string] }> }).result;
      },
      async stop() {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
      logs: () => logs,
    };
  }
}

/**
 * Prometheus's value of an instant query that yields one series, evaluated at `atMs` (a scrape
 * time from scrapedAfter, so that every query of a check sees the same scrape); 0 for no series
 * (a counter not created yet).
 */
export async function instantValue(prom: PrometheusServer, q: string, atMs: number): Promise<number> {
  const r = await prom.query(q, atMs);
  if (r.length > 1) throw new Error(`${q}: ${r.length} series, expected one`);
  return r[0] ? Number(r[0].value[1]) : 0;
}

/**
 * Waits until Prometheus holds a successful scrape of `job` that started after `afterMs` (epoch
 * ms), and returns its time: queries at that time include everything the gateway had counted by
 * `afterMs`. (A scrape that times out on a loaded machine leaves no portcullis_ready sample, so it
 * is skipped.) Polls the HTTP API (Prometheus has no push); the scrape interval is 1 s.
 */
export async function scrapedAfter(prom: PrometheusServer, job: string, afterMs: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = (await prom.query(`timestamp(portcullis_ready{job="${job}"})`))[0];
    const at = last ? Number(last.value[1]) * 1000 : 0;
    // 1 ms on: a query at exactly the sample's time could round to just before it.
    if (at > afterMs) return at + 1;
    if (Date.now() > deadline)
      throw new Error(`no scrape after ${new Date(afterMs).toISOString()} within ${timeoutMs} ms; prometheus log: ${prom.logs().slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string; refId: string }>;
}

export function dashboardPanels(): DashboardPanel[] {
  return (JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: DashboardPanel[] }).panels;
}

/** The panels under the row titled `row` (up to the next row). */
export function panelsOfRow(row: string): DashboardPanel[] {
  const panels = dashboardPanels();
  const start = panels.findIndex((p) => p.type === 'row' && p.title === row);
  if (start < 0) throw new Error(`the dashboard has no row "${row}"`);
  const end = panels.findIndex((p, i) => i > start && p.type === 'row');
  return panels.slice(start + 1, end < 0 ? undefined : end);
}

/** A dashboard expression as Prometheus gets it for job `job`, every instance, 1-minute rate windows. */
export function concreteExpr(expr: string, job: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', job).replaceAll('$instance', '.*');
}

/** Every metric selector in the dashboard (panels, annotations, variables) and the alert rules. */
export function usedMetrics(): Array<MetricUse & { where: string }> {
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
    if (!m?.[1]) throw new Error(`variable ${v.name}: not a label_values() query: ${q}`);
    for (const u of metricsInExpr(m[1])) uses.push({ ...u, where: `variable ${v.name}` });
  }
  const rules = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  for (const g of rules.groups) for (const r of g.rules) for (const u of metricsInExpr(r.expr)) uses.push({ ...u, where: `alert ${r.alert}` });
  return uses;
}

/** What `uses` name that the scrape `families` lacks: a metric, a histogram, or a label. */
export function missingFromScrape(uses: Array<MetricUse & { where: string }>, families: Map<string, Family>): string[] {
  const problems: string[] = [];
  const TARGET_LABELS = ['job', 'instance'];
  for (const u of uses) {
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
      if (!TARGET_LABELS.includes(l) && !fam.labels.has(l))
        problems.push(`${u.where}: ${u.metric} has no label ${l} (has ${[...fam.labels].join(', ') || 'none'})`);
    }
  }
  return problems;
}

/** `promtool check metrics` on an exposition text: exit code and everything it printed. */
export function promtoolCheckMetrics(promtool: string, text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
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

export { metric, sampleSum, scrape, startGateway, waitForMetric, type GatewayProcess };

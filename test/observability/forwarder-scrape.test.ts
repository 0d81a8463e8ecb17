/**
 * The forwarder's metrics, dashboard row and alert rules against real parts: a `portcullis start`
 * process with a forwarder section sends to the Azure Monitor emulator, a real Prometheus scrapes
 * it every second with the shipped rules. The emulator throttles once (429), refuses a token once
 * (401, the gateway refreshes it), fails one token request, and refuses one stream for good (400,
 * dead letters); clients send a wrong API key and a body that is not an array.
 *
 * Checked: every query of the dashboard's Forwarder row has data for that traffic, the counts
 * Prometheus stores are exactly that traffic (records accepted = records the test sent), the
 * dead-letter alert fires for the very first dead letter (a new series), the /metrics text passes
 * promtool and has every forwarder metric and label the dashboard and rules use, and every
 * forwarder family is described in docs/metrics.md.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from '../../src/forwarder/index.js';
import { requireBinary } from '../helpers/system.js';
import { testCA } from '../helpers/tls.js';
import { emulatorAgent, send } from '../emulator/clients.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import {
  ALERTS_FILE,
  METRICS_DOC,
  concreteExpr,
  instantValue,
  missingFromScrape,
  panelsOfRow,
  parseExposition,
  promtoolCheckMetrics,
  scrape,
  scrapedAfter,
  startGateway,
  startPrometheus,
  usedMetrics,
  waitForMetric,
  type GatewayProcess,
  type PrometheusServer,
} from './helpers.js';

const prometheusBin = requireBinary('prometheus');
const promtool = requireBinary('promtool');
const JOB = 'portcullis';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const SECRET = 'forwarder-observability-secret';
const DCR_UP = 'dcr-00000000000000000000000000000ccc';
const DCR_IN = 'dcr-gateway-in';
const STREAM = 'Custom-App_CL';
/** Every batch of this stream is refused with 400 by the emulator: dead letters. */
const DEAD_STREAM = 'Custom-Rejected_CL';
const API_KEY = 'pcl_observability_key_0123456789';
const SPOOL_MAX = 64 * 1024 * 1024;

/** The test's traffic: two rounds (a scrape in between, so rate() sees an increase). */
const ROUND = [
  { app: [40, 25, 35], dead: [10], badKey: 2, notArray: 1 },
  { app: [30, 20], dead: [5, 7], badKey: 1, notArray: 0 },
];
const SENT_APP = ROUND.flatMap((r) => r.app).reduce((a, b) => a + b, 0);
const SENT_DEAD = ROUND.flatMap((r) => r.dead).reduce((a, b) => a + b, 0);
const UPLOADS_OK = ROUND.reduce((n, r) => n + r.app.length + r.dead.length, 0);
const BAD_KEY = ROUND.reduce((n, r) => n + r.badKey, 0);
const NOT_ARRAY = ROUND.reduce((n, r) => n + r.notArray, 0);

let emu: AzureMonitorEmulator;
let gw: GatewayProcess;
let prom: PrometheusServer;
let agent: HttpsAgent;
let ingestUrl = '';
const sentIds = new Set<string>();

function gatewayConfig(dir: string, files: { cert: string; key: string; secret: string }): Record<string, unknown> {
  const dce = new URL(emu.logsIngestionEndpoint());
  const login = new URL(emu.authorityHost);
  return {
    allow: { presets: [], rules: [{ name: 'emulator', hosts: [dce.hostname, login.hostname], ports: [emu.port], allowPrivate: true }] },
    dns: { overrides: { [dce.hostname]: '127.0.0.1', [login.hostname]: '127.0.0.1' } },
    forwarder: {
      listen: '127.0.0.1:0',
      tls: { certFile: files.cert, keyFile: files.key },
      spool: { dir: join(dir, 'spool'), maxBytes: SPOOL_MAX },
      deadLetterDir: join(dir, 'dead-letter'),
      batch: { maxAgeMs: 200 },
      pool: { threads: 1 },
      upstream: { caFile: emu.caFile, authorityHost: emu.authorityHost, retry: { baseMs: 50, maxMs: 500 } },
      credentials: [{ name: 'main', type: 'clientSecret', tenantId: TENANT, clientId: CLIENT, secretFile: files.secret }],
      destinations: [{ name: 'dcr-main', type: 'logsIngestion', endpoint: dce.origin, dcrId: DCR_UP, credential: 'main' }],
      routes: [
        { name: 'app', from: { dcrId: DCR_IN, stream: STREAM }, to: 'dcr-main' },
        { name: 'rejected', from: { dcrId: DCR_IN, stream: DEAD_STREAM }, to: 'dcr-main' },
      ],
      identities: [{ name: 'apps', apiKeySha256: sha256(API_KEY).toString('hex'), routes: ['app', 'rejected'] }],
    },
  };
}

/** One Logs Ingestion API upload to the gateway; returns the status. */
async function upload(stream: string, body: Buffer, opts: { key?: string; gzip?: boolean } = {}): Promise<number> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.key ?? API_KEY}`, 'content-type': 'application/json' };
  if (opts.gzip) headers['content-encoding'] = 'gzip';
  const res = await send(`${ingestUrl}/dataCollectionRules/${DCR_IN}/streams/${stream}?api-version=2023-01-01`, {
    agent,
    headers,
    body: opts.gzip ? gzipSync(body) : body,
  });
  return res.status;
}

function records(n: number): Buffer {
  const rows = Array.from({ length: n }, (_, i) => {
    const id = randomUUID();
    sentIds.add(id);
    return { TimeGenerated: new Date().toISOString(), Id: id, Seq: i, Message: `observability test record ${i}` };
  });
  return Buffer.from(JSON.stringify(rows));
}

async function drive(round: (typeof ROUND)[number]): Promise<void> {
  for (const [i, n] of round.app.entries()) expect(await upload(STREAM, records(n), { gzip: i % 2 === 0 })).toBe(204);
  for (const n of round.dead) expect(await upload(DEAD_STREAM, records(n))).toBe(204);
  for (let i = 0; i < round.badKey; i++) expect(await upload(STREAM, records(1), { key: 'pcl_not_a_key' })).toBe(401);
  for (let i = 0; i < round.notArray; i++) expect(await upload(STREAM, Buffer.from('{"not":"an array"}'))).toBe(400);
}

/** Waits until the gateway has delivered or dead-lettered `app` + `dead` records and its spool is empty. */
async function settled(app: number, dead: number): Promise<void> {
  await waitForMetric(gw.adminPort, 'portcullis_forwarder_records_sent_total', {}, (v) => v === app, 20_000);
  await waitForMetric(gw.adminPort, 'portcullis_forwarder_dead_lettered_records_total', {}, (v) => v === dead, 20_000);
  await waitForMetric(gw.adminPort, 'portcullis_forwarder_spool_pending_entries', {}, (v) => v === 0, 20_000);
}

describe.skipIf(!prometheusBin)('Prometheus scraping a gateway with a forwarder', () => {
  let at = 0;
  let exposition = '';

  beforeAll(async () => {
    emu = await AzureMonitorEmulator.start();
    emu.addApp({ tenantId: TENANT, clientId: CLIENT, secrets: [SECRET] });
    emu.addDcr({ immutableId: DCR_UP, streams: [STREAM, DEAD_STREAM], allowedClientIds: [CLIENT] });
    const ca = await testCA();
    const leaf = await ca.issue(['localhost', '127.0.0.1']);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-fwdobs-'));
    const files = { cert: join(dir, 'ingest.crt'), key: join(dir, 'ingest.key'), secret: join(dir, 'secret') };
    writeFileSync(files.cert, leaf.certPem);
    writeFileSync(files.key, leaf.keyPem);
    writeFileSync(files.secret, SECRET);
    agent = emulatorAgent({ caPem: ca.caPem, loopback: false });

    gw = await startGateway(gatewayConfig(dir, files));
    const listening = await gw.waitForLog((r) => r.msg === 'forwarder listening', 15_000);
    ingestUrl = `https://127.0.0.1:${(listening.listen as { port: number }).port}`;
    prom = await startPrometheus(prometheusBin!, { job: JOB, targets: [`127.0.0.1:${gw.adminPort}`], ruleFiles: [ALERTS_FILE] });
    await scrapedAfter(prom, JOB, Date.now());

    // The faults, consumed in this order by the first requests they match.
    emu.faults.add({ api: 'token', action: { kind: 'status', status: 400, code: 'invalid_client', message: 'injected token failure' } });
    emu.faults.add({ api: 'logsIngestion', stream: STREAM, action: { kind: 'status', status: 429, retryAfterMs: 100 } });
    emu.faults.add({ api: 'logsIngestion', stream: STREAM, action: { kind: 'status', status: 401, code: 'InvalidToken', message: 'injected' } });
    emu.faults.add({
      api: 'logsIngestion',
      stream: DEAD_STREAM,
      action: { kind: 'status', status: 400, code: 'InvalidStream', message: 'injected' },
      times: Number.POSITIVE_INFINITY,
    });

    let app = 0;
    let dead = 0;
    for (const round of ROUND) {
      await drive(round);
      app += round.app.reduce((a, b) => a + b, 0);
      dead += round.dead.reduce((a, b) => a + b, 0);
      await settled(app, dead);
      await scrapedAfter(prom, JOB, Date.now());
    }
    // Two scrapes after the last traffic: rate() over the last round needs both.
    at = await scrapedAfter(prom, JOB, Date.now());
    exposition = await scrape(gw.adminPort!);
  }, 90_000);

  afterAll(async () => {
    await prom?.stop();
    await gw?.stop('SIGKILL');
    agent?.destroy();
    await emu?.close();
  });

  it('stores exactly the traffic: records accepted = records sent by the test, delivered, dead-lettered, refused', async () => {
    const v = (q: string): Promise<number> => instantValue(prom, q, at);
    const sel = `job="${JOB}"`;
    expect(await v(`sum(portcullis_forwarder_records_accepted_total{${sel}})`)).toBe(SENT_APP + SENT_DEAD);
    expect(await v(`sum(portcullis_forwarder_records_accepted_total{${sel},route="app"})`)).toBe(SENT_APP);
    expect(await v(`sum(portcullis_forwarder_records_accepted_total{${sel},route="rejected"})`)).toBe(SENT_DEAD);
    expect(await v(`sum(portcullis_forwarder_records_received_total{${sel}})`)).toBe(SENT_APP + SENT_DEAD);
    expect(await v(`sum(portcullis_forwarder_ack_seconds_count{${sel}})`)).toBe(UPLOADS_OK);
    expect(await v(`sum(portcullis_forwarder_records_sent_total{${sel},destination="dcr-main"})`)).toBe(SENT_APP);
    expect(await v(`sum(portcullis_forwarder_dead_lettered_records_total{${sel},destination="dcr-main"})`)).toBe(SENT_DEAD);
    expect(await v(`sum(portcullis_forwarder_dead_lettered_batches_total{${sel},status="400"})`)).toBe(
      await v(`sum(portcullis_forwarder_upstream_responses_total{${sel},status="400"})`),
    );
    expect(await v(`sum(portcullis_forwarder_uploads_refused_total{${sel},reason="unauthorized"})`)).toBe(BAD_KEY);
    expect(await v(`sum(portcullis_forwarder_uploads_refused_total{${sel},reason="not_array"})`)).toBe(NOT_ARRAY);
    expect(await v(`sum(portcullis_forwarder_upstream_responses_total{${sel},status="429"})`)).toBe(1);
    expect(await v(`sum(portcullis_forwarder_retries_total{${sel},reason="429"})`)).toBe(1);
    expect(await v(`sum(portcullis_forwarder_upstream_responses_total{${sel},status="401"})`)).toBe(1);
    expect(await v(`sum(portcullis_forwarder_token_refreshes_total{${sel}})`)).toBe(1);
    expect(await v(`sum(portcullis_forwarder_token_failures_total{${sel}})`)).toBeGreaterThanOrEqual(1);
    // Batches: every delivered one answered 204, and the upstream saw gzip bodies smaller than the JSON.
    expect(await v(`sum(portcullis_forwarder_batches_sent_total{${sel}})`)).toBe(
      await v(`sum(portcullis_forwarder_upstream_responses_total{${sel},status="204"})`),
    );
    expect(await v(`sum(portcullis_forwarder_bytes_sent_total{${sel},encoding="gzip"})`)).toBeLessThan(
      await v(`sum(portcullis_forwarder_bytes_uncompressed_total{${sel}})`),
    );
    expect(await v(`portcullis_forwarder_spool_max_bytes{${sel}}`)).toBe(SPOOL_MAX);
    expect(await v(`portcullis_forwarder_spool_pending_entries{${sel}}`)).toBe(0);
    expect(await v(`portcullis_forwarder_oldest_unsent_age_seconds{${sel}}`)).toBe(0);
    expect(await v(`portcullis_forwarder_spool_healthy{${sel}}`)).toBe(1);

    // What Prometheus says was delivered is what the emulator holds: the test's own records, once.
    const atEmulator = emu.records({ target: DCR_UP, stream: STREAM }).map((r) => (r.record as { Id: string }).Id);
    expect(atEmulator).toHaveLength(SENT_APP);
    expect(atEmulator.every((id) => sentIds.has(id))).toBe(true);
  });

  it("has data for every query of the dashboard's Forwarder row", async () => {
    const panels = panelsOfRow('Forwarder');
    expect(panels.length).toBeGreaterThanOrEqual(16);
    const failures: string[] = [];
    const empty: string[] = [];
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        const q = concreteExpr(t.expr, JOB);
        const r = await prom.queryRaw(q, at);
        if (r.status !== 'success') failures.push(`${p.title} ${t.refId}: ${q}: ${r.error}`);
        else if ((r.data as { result: unknown[] }).result.length === 0) empty.push(`${p.title} ${t.refId}: ${q}`);
      }
    }
    expect(failures).toEqual([]);
    expect(empty).toEqual([]);
  });

  it("the dashboard's records and refusal panels show this traffic", async () => {
    const expr = (title: string, refId: string): string => {
      const t = panelsOfRow('Forwarder')
        .find((p) => p.title === title)
        ?.targets?.find((x) => x.refId === refId);
      if (!t) throw new Error(`no panel "${title}" ${refId}`);
      return concreteExpr(t.expr, JOB);
    };
    // Rates over the last minute: the last round's traffic is in them, so they are above zero.
    const accepted = await prom.query(expr('Forwarder records/s (received, accepted, sent)', 'B'), at);
    expect(accepted.map((s) => s.metric.route).sort()).toEqual(['app', 'rejected']);
    for (const s of accepted) expect(Number(s.value[1])).toBeGreaterThan(0);
    const refused = await prom.query(expr('Forwarder uploads refused/s by reason', 'A'), at);
    expect(refused.map((s) => s.metric.reason).sort()).toEqual(['not_array', 'unauthorized']);
    const deadLetters = await instantValue(prom, expr('Dead-lettered records (since start)', 'A'), at);
    expect(deadLetters).toBe(SENT_DEAD);
    // Delivered segments are deleted, so the spool may be empty now: the ratio is the bytes over the limit.
    const spoolUsed = await instantValue(prom, expr('Forwarder spool used', 'A'), at);
    expect(spoolUsed).toBe((await instantValue(prom, `portcullis_forwarder_spool_bytes{job="${JOB}"}`, at)) / SPOOL_MAX);
    expect(spoolUsed).toBeLessThan(0.5);
  });

  it('raises PortcullisForwarderDeadLetters for the first dead letters, and no spool or refusal alert', async () => {
    type Alert = { labels: Record<string, string>; state: string };
    const deadline = Date.now() + 15_000;
    let alerts: Alert[] = [];
    // Waits for: a rule evaluation (1 s interval) that saw the dead-letter series. Asserts: labels and state.
    while (!alerts.some((a) => a.labels.alertname === 'PortcullisForwarderDeadLetters') && Date.now() < deadline) {
      alerts = ((await (await fetch(`http://127.0.0.1:${prom.port}/api/v1/alerts`)).json()) as { data: { alerts: Alert[] } }).data.alerts;
      if (!alerts.some((a) => a.labels.alertname === 'PortcullisForwarderDeadLetters')) await new Promise((r) => setTimeout(r, 250));
    }
    expect(alerts.filter((a) => a.labels.alertname === 'PortcullisForwarderDeadLetters')).toEqual([
      expect.objectContaining({
        labels: { alertname: 'PortcullisForwarderDeadLetters', severity: 'warning', job: JOB, instance: `127.0.0.1:${gw.adminPort}`, destination: 'dcr-main' },
        // `for: 0m`: firing at once. The counter series was created by these dead letters, which
        // increase() alone would not see.
        state: 'firing',
      }),
    ]);
    const quiet = [
      'PortcullisForwarderSpoolFilling',
      'PortcullisForwarderDeliveryLagging',
      'PortcullisForwarderRefusingUploads',
      'PortcullisForwarderSpoolWriteFailing',
    ];
    expect(alerts.filter((a) => quiet.includes(a.labels.alertname ?? ''))).toEqual([]);
  });

  it.skipIf(!promtool)('/metrics with the forwarder passes `promtool check metrics`', async () => {
    const r = await promtoolCheckMetrics(promtool!, exposition);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('exports every forwarder metric and label the dashboard and the alert rules use', () => {
    const uses = usedMetrics().filter((u) => u.metric.startsWith('portcullis_forwarder_'));
    expect(new Set(uses.map((u) => u.metric)).size).toBeGreaterThanOrEqual(20);
    expect(missingFromScrape(uses, parseExposition(exposition))).toEqual([]);
  });

  it('describes every forwarder metric in docs/metrics.md', () => {
    const doc = readFileSync(METRICS_DOC, 'utf8');
    const forwarder = [...parseExposition(exposition).keys()].filter((n) => n.startsWith('portcullis_forwarder_'));
    expect(forwarder.length).toBeGreaterThanOrEqual(25);
    expect(forwarder.filter((name) => !doc.includes('`' + name + '`'))).toEqual([]);
  });
});

/**
 * The forwarder inside the real `portcullis start` process (single process and cluster supervisor):
 * it starts from the config file, serves uploads, shows its metrics and readiness on the admin
 * listener, and drains on SIGTERM with nothing lost.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LogsIngestionClient } from '@azure/monitor-ingestion';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/forwarder/index.js';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { testCA } from '../helpers/tls.js';
import { emulatorAgent } from '../emulator/clients.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const SECRET = 'forwarder-process-secret';
const DCR_UP = 'dcr-00000000000000000000000000000bbb';
const STREAM = 'Custom-App_CL';
const API_KEY = 'pcl_process_test_key';

let emu: AzureMonitorEmulator;
let caPem: string;
let files: { dir: string; cert: string; key: string; secret: string };

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  emu.addApp({ tenantId: TENANT, clientId: CLIENT, secrets: [SECRET] });
  emu.addDcr({ immutableId: DCR_UP, streams: [STREAM], allowedClientIds: [CLIENT] });
  const ca = await testCA();
  caPem = ca.caPem;
  const leaf = await ca.issue(['localhost', '127.0.0.1']);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-fwdproc-'));
  files = { dir, cert: join(dir, 'ingest.crt'), key: join(dir, 'ingest.key'), secret: join(dir, 'secret') };
  writeFileSync(files.cert, leaf.certPem);
  writeFileSync(files.key, leaf.keyPem);
  writeFileSync(files.secret, SECRET);
});
afterAll(async () => {
  await emu?.close();
});

function gatewayConfig(spoolDir: string): Record<string, unknown> {
  const dce = new URL(emu.logsIngestionEndpoint());
  const login = new URL(emu.authorityHost);
  return {
    allow: { presets: [], rules: [{ name: 'emulator', hosts: [dce.hostname, login.hostname], ports: [emu.port], allowPrivate: true }] },
    dns: { overrides: { [dce.hostname]: '127.0.0.1', [login.hostname]: '127.0.0.1' } },
    forwarder: {
      listen: '127.0.0.1:0',
      tls: { certFile: files.cert, keyFile: files.key },
      spool: { dir: spoolDir },
      batch: { maxAgeMs: 300 },
      pool: { threads: 1 },
      upstream: { caFile: emu.caFile, authorityHost: emu.authorityHost },
      credentials: [{ name: 'main', type: 'clientSecret', tenantId: TENANT, clientId: CLIENT, secretFile: files.secret }],
      destinations: [{ name: 'dcr-main', type: 'logsIngestion', endpoint: dce.origin, dcrId: DCR_UP, credential: 'main' }],
      routes: [{ name: 'app', from: { dcrId: 'dcr-in', stream: STREAM }, to: 'dcr-main' }],
      identities: [{ name: 'apps', apiKeySha256: sha256(API_KEY).toString('hex'), routes: ['app'] }],
    },
  };
}

function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function uploadThroughGateway(gw: GatewayProcess, count: number): Promise<Array<Record<string, unknown>>> {
  const listening = await gw.waitForLog((r) => r.msg === 'forwarder listening', 15_000);
  const port = (listening.listen as { port: number }).port;
  const agent = emulatorAgent({ caPem, loopback: false });
  const credential = { getToken: async () => ({ token: API_KEY, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  const client = new LogsIngestionClient(`https://127.0.0.1:${port}`, credential, { agent });
  const records = Array.from({ length: count }, (_, i) => ({ TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: i }));
  await client.upload('dcr-in', STREAM, records);
  agent.destroy();
  return records;
}

describe.each([
  { mode: 'single process', workers: 1 },
  { mode: 'cluster supervisor', workers: 2 },
])('forwarder in the $mode', ({ workers }) => {
  it('uploads reach the emulator, metrics and readiness show the forwarder, SIGTERM exits 0', async () => {
    emu.reset();
    const spoolDir = join(files.dir, `spool-${workers}`);
    const gw = await startGateway({ ...gatewayConfig(spoolDir), proxy: { workers } });
    try {
      const records = await uploadThroughGateway(gw, 200);
      const ids = new Set(records.map((r) => r.Id));
      await emu.waitForRecords({ target: DCR_UP }, records.length);
      expect(emu.records({ target: DCR_UP }).filter((r) => ids.has((r.record as { Id: string }).Id))).toHaveLength(records.length);
      const adminPort = gw.adminPort ?? 0;
      expect(adminPort).toBeGreaterThan(0);
      const ready = await adminGet(adminPort, '/readyz');
      expect(ready.status).toBe(200);
      const metrics = await adminGet(adminPort, '/metrics');
      expect(metrics.body).toMatch(/portcullis_forwarder_records_accepted_total\{api="logs_ingestion",route="app"\} 200/);
      expect(metrics.body).toMatch(/portcullis_forwarder_spool_bytes \d+/);
      expect(await gw.stop('SIGTERM')).toBe(0);
      expect(gw.logs.some((r) => r.msg === 'forwarder stopped; unsent records stay in the spool')).toBe(true);
    } finally {
      await gw.stop('SIGKILL');
    }
  });
});

it('check-config names a forwarder problem by its key', async () => {
  const { spawnSync } = await import('node:child_process');
  const { stringify } = await import('yaml');
  const { CLI } = await import('../helpers/gateway.js');
  const file = join(files.dir, 'bad.yaml');
  const cfg = gatewayConfig(join(files.dir, 'spool-bad'));
  const fwd = cfg.forwarder as Record<string, unknown>;
  fwd.routes = [{ name: 'app', from: { dcrId: 'dcr-in', stream: STREAM }, to: 'nowhere' }];
  writeFileSync(file, stringify(cfg));
  const out = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' });
  expect(out.status).not.toBe(0);
  expect(out.stdout + out.stderr).toMatch(/forwarder\.routes\[0\]\.to: no destination named "nowhere"/);
});

/**
 * The forwarder inside the real `portcullis start` process (single process and cluster supervisor):
 * it starts from the config file, serves uploads, shows its metrics and readiness on the admin
 * listener, and drains on SIGTERM with nothing lost.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LogsIngestionClient } from '@azure/monitor-ingestion';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { emulatorAgent } from '../emulator/clients.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import { API_KEY, DCR_IN, DCR_UP, STREAM, prepareForwarder, type ForwarderSetup } from './fixture.js';

let emu: AzureMonitorEmulator;
let setup: ForwarderSetup;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  setup = await prepareForwarder(emu, { forwarder: { batch: { maxAgeMs: 300 }, pool: { threads: 1 } } });
});
afterAll(async () => {
  await emu?.close();
});

/** The fixture's config with its own spool, logging at info (the test reads 'forwarder listening'). */
function gatewayConfig(spoolDir: string): Record<string, unknown> {
  const forwarder = setup.config.forwarder as Record<string, unknown>;
  return { ...setup.config, log: { level: 'info', access: false }, forwarder: { ...forwarder, spool: { dir: spoolDir } } };
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
  const agent = emulatorAgent({ caPem: setup.caPem, loopback: false });
  const credential = { getToken: async () => ({ token: API_KEY, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  const client = new LogsIngestionClient(`https://127.0.0.1:${port}`, credential, { agent });
  const records = Array.from({ length: count }, (_, i) => ({ TimeGenerated: new Date().toISOString(), Id: randomUUID(), Seq: i }));
  await client.upload(DCR_IN, STREAM, records);
  agent.destroy();
  return records;
}

describe.each([
  { mode: 'single process', workers: 1 },
  { mode: 'cluster supervisor', workers: 2 },
])('forwarder in the $mode', ({ workers }) => {
  it('uploads reach the emulator, metrics and readiness show the forwarder, SIGTERM exits 0', async () => {
    emu.reset();
    const spoolDir = join(setup.dir, `spool-${workers}`);
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
  const file = join(setup.dir, 'bad.yaml');
  const cfg = gatewayConfig(join(setup.dir, 'spool-bad'));
  const fwd = cfg.forwarder as Record<string, unknown>;
  fwd.routes = [{ name: 'app', from: { dcrId: DCR_IN, stream: STREAM }, to: 'nowhere' }];
  writeFileSync(file, stringify(cfg));
  const out = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' });
  expect(out.status).not.toBe(0);
  expect(out.stdout + out.stderr).toMatch(/forwarder\.routes\[0\]\.to: no destination named "nowhere"/);
});

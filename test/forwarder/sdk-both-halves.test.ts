/**
 * Acceptance (issue 9): both halves of Portcullis proven with one real client. The official SDK,
 * in its own process configured like a user's script (HTTPS_PROXY=http://127.0.0.1:<proxy port>,
 * NO_PROXY for the gateway itself, NODE_EXTRA_CA_CERTS for the test CA), uploads
 *   1. to the real `portcullis start` forwarder (endpoint = the gateway's ingest listener), and
 *   2. to the emulator directly (endpoint = the emulator's DCE; token from its Entra authority),
 *      through the gateway's proxy listener: CONNECT tunnels allowed by the `emulator` rule, the
 *      names resolved by the gateway's dns.overrides.
 * Both sets of records arrive; the access log shows the tunnels (event 103, rule `emulator`).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import {
  API_KEY,
  CLIENT,
  DCR_IN,
  DCR_UP,
  FW_STREAM,
  SECRET,
  STREAM,
  TENANT,
  prepareForwarder,
  realisticRecords,
  waitForIds,
  type ForwarderSetup,
} from './fixture.js';

const CHILD = resolve(import.meta.dirname, 'sdk-child.mjs');
let emu: AzureMonitorEmulator;
let setup: ForwarderSetup;
let gw: GatewayProcess | undefined;

beforeAll(async () => {
  emu = await AzureMonitorEmulator.start();
  setup = await prepareForwarder(emu, { forwarder: { pool: { threads: 1 }, batch: { maxAgeMs: 300 } } });
});
afterAll(async () => {
  await gw?.stop('SIGKILL');
  await emu?.close();
});

function runChild(job: unknown, env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const jobFile = join(setup.dir, 'sdk-job.json');
  writeFileSync(jobFile, JSON.stringify(job));
  return new Promise((resolveRun, reject) => {
    const proc = spawn(process.execPath, [CHILD, jobFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 45_000);
    proc.on('error', reject);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, out, err });
    });
  });
}

it('the same SDK uploads to the gateway (forwarder) and, with HTTPS_PROXY, through its CONNECT tunnel to the emulator', async () => {
  gw = await startGateway({ ...setup.config, log: { level: 'info', access: true } });
  const listening = await gw.waitForLog((r) => r.msg === 'forwarder listening', 15_000);
  const ingestPort = (listening.listen as { port: number }).port;
  // Trust for the child: the gateway's ingest CA and the emulator's CA, the way an operator adds one.
  const caBundle = join(setup.dir, 'trust.pem');
  writeFileSync(caBundle, `${setup.caPem}\n${emu.caPem}\n`);

  const viaForwarder = realisticRecords(500, 0, 'half-forwarder');
  // A stream of the DCR the gateway does not forward to: only the tunnel can have put these there.
  const viaTunnel = realisticRecords(500, 0, 'half-tunnel');
  const job = {
    gateway: { endpoint: `https://127.0.0.1:${ingestPort}`, apiKey: API_KEY, dcrId: DCR_IN, stream: STREAM, records: viaForwarder },
    emulator: {
      endpoint: emu.logsIngestionEndpoint(),
      tenantId: TENANT,
      clientId: CLIENT,
      secret: SECRET,
      authorityHost: emu.authorityHost,
      dcrId: DCR_UP,
      stream: FW_STREAM,
      records: viaTunnel,
    },
  };
  const since = gw.logs.length;
  const child = await runChild(job, {
    HTTPS_PROXY: `http://127.0.0.1:${gw.port}`,
    NO_PROXY: '127.0.0.1',
    NODE_EXTRA_CA_CERTS: caBundle,
  });
  expect(child.code, child.err).toBe(0);
  expect(JSON.parse(child.out)).toEqual({ gateway: 'ok', emulator: 'ok' });

  // Half 1: the forwarder spooled, batched and forwarded them.
  const gotForwarded = await waitForIds(emu, { target: DCR_UP, stream: STREAM }, new Set(viaForwarder.map((r) => r.RecordId)), 20_000);
  expect(gotForwarded.map((r) => r.record)).toEqual(viaForwarder);
  // Half 2: the SDK's own requests, tunnelled: the token from the emulator's authority and the upload.
  const gotTunnelled = await waitForIds(emu, { target: DCR_UP, stream: FW_STREAM }, new Set(viaTunnel.map((r) => r.RecordId)), 20_000);
  expect(gotTunnelled.map((r) => r.record)).toEqual(viaTunnel);
  expect(emu.tokensIssued(CLIENT)).toBeGreaterThanOrEqual(2); // the gateway's own token + the SDK's

  const dce = new URL(emu.logsIngestionEndpoint()).hostname;
  const login = new URL(emu.authorityHost).hostname;
  const tunnels = async (host: string): Promise<unknown> =>
    gw?.waitForLog((r) => r.event === 103 && r.rule === 'emulator' && String(r.target) === `${host}:${emu.port}` && r.verdict === 'allow', 10_000, since);
  // Tunnel records are written when a tunnel ends; the child has exited, so they all have.
  await expect(tunnels(dce)).resolves.toMatchObject({ kind: 'tunnel', method: 'CONNECT' });
  await expect(tunnels(login)).resolves.toMatchObject({ kind: 'tunnel', method: 'CONNECT' });
  const upBytes = gw.logs
    .slice(since)
    .filter((r) => r.event === 103 && String(r.target).startsWith(dce))
    .reduce((n, r) => n + Number(r.bytesUp ?? 0), 0);
  // The SDK's gzip upload went through the tunnel (encrypted end to end: more than nothing).
  expect(upBytes).toBeGreaterThan(10_000);
  expect(await gw.stop('SIGTERM')).toBe(0);
}, 60_000);

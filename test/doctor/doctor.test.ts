/**
 * `portcullis doctor` against the Azure Monitor emulator (HTTPS with a test CA, its hosts mapped by
 * dns.overrides): the real CLI checks the allowed names and the forwarder's upstreams on the
 * gateway's path and prints the table; a name outside the allowlist fails at the policy, an
 * untrusted certificate at TLS, a stopped endpoint at TCP, and the exit code says so.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { AzureMonitorEmulator } from '../emulator/emulator.js';
import { prepareForwarder } from '../forwarder/fixture.js';
import { CLI } from '../helpers/gateway.js';

/** Asynchronously: the emulator answers from this process. */
function doctor(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, 'doctor', '--timeout', '3000', ...args], { timeout: 60_000 }, (_err, stdout, stderr) =>
      resolve({ code: child.exitCode ?? 1, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

function rowOf(table: string, endpoint: string): string {
  return table.split('\n').find((l) => l.startsWith(endpoint)) ?? `(no row for ${endpoint})`;
}

describe('portcullis doctor', () => {
  let emu: AzureMonitorEmulator;
  let dir = '';
  let config: Record<string, unknown> = {};
  let dce = '';
  let login = '';

  const writeConfig = (name: string, c: Record<string, unknown>): string => {
    const file = join(dir, name);
    writeFileSync(file, stringify(c));
    return file;
  };

  beforeAll(async () => {
    emu = await AzureMonitorEmulator.start();
    const setup = await prepareForwarder(emu);
    config = setup.config;
    dce = `${new URL(emu.logsIngestionEndpoint()).hostname}:${emu.port}`;
    login = `${new URL(emu.authorityHost).hostname}:${emu.port}`;
    dir = mkdtempSync(join(tmpdir(), 'portcullis-doctor-'));
  }, 60_000);
  afterAll(async () => {
    await emu?.close();
  });

  it('every allowed name and forwarder upstream passes DNS, TCP and TLS: exit 0; wildcards are listed as not checked', async () => {
    const r = await doctor(['--config', writeConfig('ok.yaml', config)]);
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    expect(rowOf(r.stdout, login)).toMatch(/rule emulator .* ms .* ms .* ms +OK \(TLSv1\.[23]/);
    expect(rowOf(r.stdout, dce)).toMatch(/forwarder destination dcr-main .*OK/);
    expect(rowOf(r.stdout, '*.ingest.monitor.azure.com')).toContain('not checked');
    expect(r.stdout).toMatch(/verdict: OK, 3 endpoints reachable/);
  });

  it('a name outside the allowlist fails at the policy and an untrusted certificate at TLS: exit 1', async () => {
    const fwd = config.forwarder as Record<string, unknown>;
    const upstream = fwd.upstream as Record<string, unknown>;
    // Without the emulator's CA the gateway could not verify its upstreams either.
    const untrusting = { ...config, forwarder: { ...fwd, upstream: { ...upstream, caFile: undefined } } };
    const r = await doctor(['--config', writeConfig('no-ca.yaml', JSON.parse(JSON.stringify(untrusting)) as Record<string, unknown>), '--host', 'example.org']);
    expect(r.code).toBe(1);
    expect(rowOf(r.stdout, 'example.org:443')).toMatch(/FAIL at policy: PCL_ERR_TARGET_FORBIDDEN/);
    expect(rowOf(r.stdout, login)).toMatch(/FAIL at tls: .*(certificate|CERT)/i);
    expect(r.stdout).toMatch(/verdict: 4 of 4 endpoints NOT reachable/);
  });

  it('a stopped endpoint fails at TCP: exit 1', async () => {
    await emu.close();
    const r = await doctor(['--config', writeConfig('down.yaml', config)]);
    expect(r.code).toBe(1);
    expect(rowOf(r.stdout, login)).toMatch(/FAIL at tcp: PCL_ERR_CONNECT_REFUSED/);
  });
});

/**
 * `portcullis doctor` with upstreamProxy: against the Azure Monitor emulator through a real Squid
 * relay with Basic auth, each check goes DNS and TCP of the relay, the relay's answer to CONNECT,
 * then the TLS handshake with SNI inside the tunnel, and the table says so; with the relay stopped
 * every check fails at the relay's TCP step and the exit code is 1.
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
import { requireBinary } from '../helpers/system.js';
import { startSquid, type SquidRelay } from '../helpers/squid.js';

const squid = requireBinary('squid');

function doctor(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, 'doctor', '--timeout', '10000', ...args], { timeout: 60_000 }, (_err, stdout, stderr) =>
      resolve({ code: child.exitCode ?? 1, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

function rowOf(table: string, endpoint: string): string {
  return table.split('\n').find((l) => l.startsWith(endpoint)) ?? `(no row for ${endpoint})`;
}

describe.skipIf(!squid)('portcullis doctor through a relay proxy', () => {
  let emu: AzureMonitorEmulator;
  let relay: SquidRelay;
  let file = '';
  let login = '';
  let dce = '';

  beforeAll(async () => {
    emu = await AzureMonitorEmulator.start();
    const setup = await prepareForwarder(emu);
    const overrides = (setup.config.dns as { overrides: Record<string, string> }).overrides;
    relay = await startSquid({ users: { doctor: 'relay-pass' }, hosts: overrides });
    login = `${new URL(emu.authorityHost).hostname}:${emu.port}`;
    dce = `${new URL(emu.logsIngestionEndpoint()).hostname}:${emu.port}`;
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-doctor-relay-'));
    file = join(dir, 'relay.yaml');
    writeFileSync(file, stringify({ ...setup.config, upstreamProxy: { proxies: [{ url: relay.url, username: 'doctor', password: 'relay-pass' }] } }), {
      mode: 0o600,
    });
  }, 60_000);
  afterAll(async () => {
    await relay?.stop();
    await emu?.close();
  });

  it('checks every endpoint through the relay (DNS, TCP, CONNECT, TLS with SNI) and says so: exit 0', async () => {
    const r = await doctor(['--config', file]);
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    const via = `relay 127.0.0.1:${relay.port}`;
    expect(rowOf(r.stdout, login)).toMatch(new RegExp(`${via} +\\d+ ms +\\d+ ms +\\d+ ms +\\d+ ms +OK \\(TLSv1\\.[23]`));
    expect(rowOf(r.stdout, dce)).toContain(via);
    expect(r.stdout).toContain("through a relay: DNS and TCP are the relay's");
    // Squid carried the checks: one CONNECT per endpoint, each with the doctor's credentials.
    await relay.waitForAccess((l) => l.includes(`CONNECT ${login}`));
    expect(relay.accessLog().find((l) => l.includes(`CONNECT ${login}`))).toContain('doctor');
  });

  it('with the relay stopped every check fails at the relay: exit 1', async () => {
    await relay.stop();
    const r = await doctor(['--config', file]);
    expect(r.code).toBe(1);
    expect(rowOf(r.stdout, login)).toMatch(/FAIL at tcp \(relay\): relay 127\.0\.0\.1:\d+: PCL_ERR_CONNECT_REFUSED/);
    expect(r.stdout).toMatch(/verdict: \d+ of \d+ endpoints NOT reachable/);
  });
});

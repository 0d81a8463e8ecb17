/**
 * `portcullis agent-config`: the settings it prints work as pasted. The SDK lines are put in a real
 * client's environment (curl) and reach an allowed HTTPS destination through a running gateway; the
 * Azure Monitor Agent settings are the documented JSON shapes with the gateway's address; no
 * credential is ever printed, only placeholders.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CLI, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { freePort, startHttpsServer, type TestHttpsServer } from '../helpers/servers.js';
import { requireBinary } from '../helpers/system.js';

const curl = requireBinary('curl');
const DEST = 'ingest.agent-config.example.com';

function agentConfig(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'agent-config', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('portcullis agent-config', () => {
  let upstream: TestHttpsServer;
  let gw: GatewayProcess;
  let configFile = '';
  let port = 0;

  beforeAll(async () => {
    upstream = await startHttpsServer({ names: [DEST] });
    port = await freePort();
    const config = {
      proxy: { listen: [`127.0.0.1:${port}`] },
      allow: { presets: [], rules: [{ name: 'dest', hosts: [DEST], ports: [upstream.port], allowPrivate: true }] },
      dns: { overrides: { [DEST]: '127.0.0.1' } },
    };
    gw = await startGateway(config);
    configFile = join(mkdtempSync(join(tmpdir(), 'portcullis-agentcfg-')), 'portcullis.yaml');
    writeFileSync(configFile, stringify(config));
  });
  afterAll(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it.skipIf(!curl)('the SDK environment lines, pasted into a real client, reach an allowed destination through the gateway', async () => {
    const out = agentConfig(['--config', configFile, '--agent', 'sdk']);
    expect(out.status).toBe(0);
    const env: Record<string, string> = {};
    for (const m of out.stdout.matchAll(/^\s*export (\w+)=(\S+)$/gm)) env[m[1] ?? ''] = m[2] ?? '';
    expect(env.HTTPS_PROXY).toBe(`http://127.0.0.1:${port}`);
    // Asynchronously: the destination is served by this very process.
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      execFile(
        curl ?? 'curl',
        ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', upstream.caFile, `https://${DEST}:${upstream.port}/`],
        { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
        (_err, stdout, stderr) => resolve({ stdout: String(stdout), stderr: String(stderr) }),
      );
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('200');
    // And through the gateway, not around it: it logged the tunnel.
    await gw.waitForLog((l) => l.event === 103 && JSON.stringify(l).includes(DEST), 5_000);
  });

  it('the Azure Monitor Agent settings are the documented JSON with the address; --auth adds protected settings with placeholders only', () => {
    const plain = agentConfig(['--config', configFile, '--agent', 'ama']);
    expect(plain.status).toBe(0);
    const settings = /^\s*(\{"proxy":\{"mode".*\})$/m.exec(plain.stdout)?.[1] ?? '';
    expect(JSON.parse(settings)).toEqual({ proxy: { mode: 'application', address: `http://127.0.0.1:${port}`, auth: 'false' } });
    expect(plain.stdout).not.toContain('ProtectedSettingString');

    const withAuth = agentConfig(['--config', configFile, '--agent', 'ama', 'sdk', '--auth']);
    expect(withAuth.status).toBe(0);
    const lines = [...withAuth.stdout.matchAll(/^\s*(\{"proxy":.*\})$/gm)].map((m) => JSON.parse(m[1] ?? '{}') as { proxy: Record<string, string> });
    expect(lines.map((l) => l.proxy)).toEqual([
      { mode: 'application', address: `http://127.0.0.1:${port}`, auth: 'true' },
      { username: '<username>', password: '<password>' },
    ]);
    expect(withAuth.stdout).toContain(`export HTTPS_PROXY=http://<username>:<password>@127.0.0.1:${port}`);
  });

  it('a wildcard listen address becomes this host name; every agent kind has a section; an unknown kind is refused', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'portcullis-agentcfg-')), 'wild.yaml');
    writeFileSync(file, stringify({ proxy: { listen: ['0.0.0.0:8080'] } }));
    const all = agentConfig(['--config', file]);
    expect(all.status).toBe(0);
    expect(all.stdout).toContain(`# Agent settings for the Portcullis gateway at http://${hostname()}:8080`);
    for (const title of [
      'Azure Monitor Agent',
      'Azure Arc',
      'Defender for Endpoint',
      'SDK clients',
      'Telemetry forwarder',
      'Linux (legacy OMS agent)',
      'Windows (legacy MMA)',
      'Operations Manager',
    ])
      expect(all.stdout).toContain(title);
    expect(agentConfig(['--config', file, '--address', 'http://gw.contoso.com:3128', '--agent', 'arc']).stdout).toContain(
      'azcmagent config set proxy.url "http://gw.contoso.com:3128"',
    );
    // The Arc and Defender sections say which preset opens the agent's endpoints, and whether this config has it.
    expect(all.stdout).toContain('add the preset for your cloud (azure-arc | azure-arc-usgov | azure-arc-china) to allow.presets');
    const withPresets = join(mkdtempSync(join(tmpdir(), 'portcullis-agentcfg-')), 'presets.yaml');
    writeFileSync(withPresets, stringify({ allow: { presets: ['azure-arc-usgov', 'defender-endpoint-usgov'] } }));
    const svc = agentConfig(['--config', withPresets, '--address', 'http://gw.contoso.com:3128', '--agent', 'arc', 'defender']);
    expect(svc.status).toBe(0);
    expect(svc.stdout).toContain('allow.presets has azure-arc-usgov.');
    expect(svc.stdout).toContain('allow.presets has defender-endpoint-usgov.');
    expect(svc.stdout).toContain('sudo mdatp config proxy set --value http://gw.contoso.com:3128');
    expect(svc.stdout).toContain('/v TelemetryProxyServer /t REG_SZ /d "gw.contoso.com:3128"');
    const bad = agentConfig(['--config', file, '--agent', 'telnet']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown agent kind telnet');
  });
});

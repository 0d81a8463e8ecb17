/**
 * The management CLI (`portcullis allow|relay|clients|config`), run as the real binary: against a
 * stopped gateway it edits the operator's commented file (comments and key order survive the round
 * trip), against a running one it goes through the admin API and the change applies live.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type GatewayProcess } from '../helpers/gateway.js';
import { openTunnel } from '../helpers/raw.js';
import { startTcpEcho, type TestServer } from '../helpers/servers.js';
import { commentedConfig, commentsOf, startWithCommentedFile, topLevelKeys } from '../admin/helpers.js';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], stdin?: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

let echo: TestServer;
beforeAll(async () => {
  echo = await startTcpEcho();
});
afterAll(async () => {
  await echo.close();
});

describe('gateway not running: the CLI edits the file', () => {
  it('round-trips allow, relay, clients and config on a commented file; comments and key order survive; refusals write nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
    const file = join(dir, 'portcullis.yaml');
    const original = commentedConfig(echo.port, { adminListen: `127.0.0.1:${await closedPort()}` });
    writeFileSync(file, original);
    const c = ['-c', file];

    const add = await runCli(['allow', 'add', 'a.example.com', 'b.example.com', ...c]);
    expect(add).toMatchObject({ code: 0 });
    expect(add.stderr).toContain('no gateway answers');
    expect(add.stdout).toContain('rule allowed-hosts created with a.example.com, b.example.com');
    expect((await runCli(['allow', 'add', '--rule', 'echo', '--port', '8443', 'c.example.com', ...c])).code).toBe(0);
    const list = JSON.parse((await runCli(['allow', 'list', '--json', ...c])).stdout) as { rules: Array<{ name: string; hosts: string[]; ports: number[] }> };
    expect(list.rules).toEqual([
      expect.objectContaining({ name: 'echo', hosts: ['echo.example.com', 'c.example.com'], ports: [echo.port, 8443] }),
      expect.objectContaining({ name: 'allowed-hosts', hosts: ['a.example.com', 'b.example.com'], ports: [443] }),
    ]);
    expect((await runCli(['allow', 'list', ...c])).stdout).toMatch(/allowed-hosts +443 +a\.example\.com, b\.example\.com/);
    expect((await runCli(['allow', 'remove', 'a.example.com', ...c])).code).toBe(0);

    const relay = await runCli(
      ['relay', 'set', 'http://127.0.0.1:3128', '--username', 'bob', '--password-stdin', '--bypass', '*.corp.example', ...c],
      'cli-secret-9\n',
    );
    expect(relay.code).toBe(0);
    const relayView = JSON.parse((await runCli(['relay', 'get', '--json', ...c])).stdout) as Record<string, unknown>;
    expect(relayView).toMatchObject({ configured: true, proxies: [{ url: 'http://127.0.0.1:3128', username: 'bob', password: { source: 'inline' } }] });
    expect(JSON.stringify(relayView)).not.toContain('cli-secret-9');
    expect(readFileSync(file, 'utf8')).toContain('cli-secret-9');

    const subject = 'CN=ws, CN=agent, OU=Microsoft Monitoring Agent, O=Microsoft';
    expect((await runCli(['clients', 'add', '--subject', subject, ...c])).code).toBe(0);
    expect(JSON.parse((await runCli(['clients', 'list', '--json', ...c])).stdout)).toEqual({ subjects: [subject], thumbprintsSha256: [] });

    expect((await runCli(['config', 'set', ...c, 'proxy.timeouts.idleMs', '120000'])).code).toBe(0);
    expect((await runCli(['config', 'get', ...c, 'proxy.timeouts.idleMs'])).stdout.trim()).toBe('120000');

    // Refused changes: exit 1 with the issue, the file byte for byte as it was.
    const before = readFileSync(file, 'utf8');
    const bad = await runCli(['config', 'set', ...c, 'proxy.timeouts.idleMs', '--', '-1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/proxy\.timeouts\.idleMs: must be at least 1/);
    expect((await runCli(['allow', 'remove', 'nowhere.example.com', ...c])).code).toBe(1);
    expect((await runCli(['allow', 'add', '--port', '70000', 'x.example.com', ...c])).code).toBe(2);
    expect(readFileSync(file, 'utf8')).toBe(before);

    // Every comment, in order, and the top-level keys in their order: the operator's file survived.
    expect(commentsOf(before)).toEqual(commentsOf(original));
    expect(topLevelKeys(before).filter((k) => topLevelKeys(original).includes(k))).toEqual(topLevelKeys(original));
    expect(before).toMatch(/idleMs: 120000 +# five minutes/);
  }, 120_000); // some 15 runs of the CLI, each a Node start
});

describe('gateway running: the CLI goes through the admin API', () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startWithCommentedFile(echo.port);
  });
  afterAll(async () => {
    await gw.stop('SIGKILL');
  });

  it('applies a change live (event 203 names the CLI user), reads through the API, and exits 3 on a refused token', async () => {
    const c = ['-c', gw.configFile, '--admin-url', `http://127.0.0.1:${gw.adminPort}`];
    expect(await openTunnel(gw.port, `new.example.com:${echo.port}`).then((t) => (t.socket.destroy(), t.status))).toBe(403);
    const add = await runCli(['allow', 'add', '--rule', 'new', '--port', String(echo.port), '--allow-private', 'new.example.com', ...c]);
    expect(add).toMatchObject({ code: 0, stderr: '' });
    expect(add.stdout).toContain('applied by the running gateway');
    expect(await openTunnel(gw.port, `new.example.com:${echo.port}`).then((t) => (t.socket.destroy(), t.status))).toBe(200);
    const line = await gw.waitForLog((r) => r.event === 203 && r.action === 'allow.add');
    expect(String(line.actor)).toContain('(portcullis CLI)');

    const json = JSON.parse((await runCli(['allow', 'add', '--json', '--rule', 'new', 'new.example.com', ...c])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ via: 'api', written: false, changed: [] });
    expect((await runCli(['config', 'get', 'proxy.timeouts.idleMs', ...c])).stdout.trim()).toBe('300000');
    const refused = await runCli(['config', 'set', 'proxy.timeouts.idleMs', ...c, '--', '0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('PCL_ERR_API_INVALID');

    const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-token-'));
    writeFileSync(join(dir, 'token'), 'not-the-right-token-at-all\n');
    const wrong = await runCli(['allow', 'list', ...c, '--token-file', join(dir, 'token')]);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain('PCL_ERR_API_AUTH');
    expect(commentsOf(readFileSync(gw.configFile, 'utf8'))).toEqual(commentsOf(commentedConfig(echo.port)));
  }, 60_000);
});

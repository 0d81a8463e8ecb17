/**
 * TLS inspection inside tunnels (docs/tls-inspection.md) with real TLS clients: openssl s_client
 * (-proxy sends the CONNECT) and curl, through the real gateway, to TLS servers on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import https from 'node:https';
import { startGateway, type GatewayProcess, type LogRecord } from '../helpers/gateway.js';
import { startHttpsServer, startTcpEcho, defaultHandler, type TestHttpsServer, type TestServer } from '../helpers/servers.js';
import { testCA, type IssuedCert } from '../helpers/tls.js';
import { requireBinary, run } from '../helpers/system.js';
import { metric } from '../helpers/metrics.js';
import { openTunnel } from '../helpers/raw.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

const WS = '4f0c7d1e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';
const ODS = `${WS}.ods.opinsights.azure.com`;
const MTLS = 'mtls.example.com';
const PLAIN = 'plain.example.com';
const REPORTED = 'report.example.com';
const GOOD_AGENT = '0a1b2c3d-0000-4000-8000-000000000001';
const BAD_AGENT = '0a1b2c3d-0000-4000-8000-000000000002';

const curl = requireBinary('curl');
const openssl = requireBinary('openssl');

let ods: TestHttpsServer;
let mtls: { port: number; close(): Promise<void> };
let echo: TestServer;
let gw: GatewayProcess;
let good: { cert: string; key: string };
let bad: { cert: string; key: string };
let config: Record<string, unknown>;

function writeCert(dir: string, name: string, c: IssuedCert): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, c.certPem);
  writeFileSync(key, c.keyPem, { mode: 0o600 });
  return { cert, key };
}

/** A TLS 1.2-only HTTPS server that asks for (and requires) a client certificate from the test CA. */
async function startMtlsServer(): Promise<{ port: number; close(): Promise<void> }> {
  const ca = await testCA();
  const { keyPem, certPem } = await ca.issue([MTLS]);
  const server = https.createServer(
    { key: keyPem, cert: certPem, ca: ca.caPem, requestCert: true, rejectUnauthorized: true, maxVersion: 'TLSv1.2' },
    defaultHandler,
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** openssl s_client through the gateway (`-proxy` sends the CONNECT); stdin is empty, so it quits after the handshake. */
function sClient(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    const p = spawn(openssl!, ['s_client', '-proxy', `127.0.0.1:${gw.port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function refusalLog(code: string, since: number): Promise<LogRecord> {
  return gw.waitForLog((r) => r.code === code, 10_000, since);
}

beforeAll(async () => {
  const ca = await testCA();
  ods = await startHttpsServer({ names: [ODS] });
  mtls = await startMtlsServer();
  echo = await startTcpEcho();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-insp-'));
  const agent = (guid: string): Promise<IssuedCert> =>
    ca.issueClient({ commonNames: [WS, guid], organizationalUnit: 'Microsoft Monitoring Agent', organization: 'Microsoft' });
  good = writeCert(dir, 'good', await agent(GOOD_AGENT));
  bad = writeCert(dir, 'bad', await agent(BAD_AGENT));
  config = {
    allow: {
      presets: [],
      workspaces: [{ id: WS, region: 'westeurope' }],
      rules: [
        { name: 'ods', hosts: ['{workspaceId}.ods.opinsights.azure.com'], ports: [ods.port], allowPrivate: true, tls: { require: true } },
        { name: 'mtls', hosts: [MTLS], ports: [mtls.port], allowPrivate: true, tls: { require: true } },
        { name: 'plain', hosts: [PLAIN], ports: [echo.port], allowPrivate: true, tls: { require: true } },
        { name: 'reported', hosts: [REPORTED], ports: [ods.port], allowPrivate: true, mode: 'report' },
      ],
    },
    clients: {
      // As an operator copies it from Windows (leaf first, ", " between pairs), in other letter case.
      certificates: { subjects: [`cn=${WS.toUpperCase()}, CN=${GOOD_AGENT}, OU=Microsoft Monitoring Agent, O=Microsoft`] },
    },
    dns: { overrides: { [ODS]: '127.0.0.1', [MTLS]: '127.0.0.1', [PLAIN]: '127.0.0.1', [REPORTED]: '127.0.0.1' } },
  };
  gw = await startGateway(config);
});

afterAll(async () => {
  await gw?.stop();
  await ods?.close();
  await mtls?.close();
  await echo?.close();
});

describe('the ClientHello', () => {
  it.skipIf(!curl)('curl over TLS 1.3 with SNI = the CONNECT host passes; the access record says what was seen', async () => {
    const since = gw.logs.length;
    const r = await run(curl!, ['-sS', '--tlsv1.3', '-x', `http://127.0.0.1:${gw.port}`, '--cacert', ods.caFile, `https://${ODS}:${ods.port}/x`]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, url: '/x' });
    const rec = await gw.waitForLog((l) => l.msg === 'access' && l.rule === 'ods', 10_000, since);
    expect(rec).toMatchObject({ status: 200, verdict: 'allow', relay: 'native', tls: { result: 'passed', offered: '1.3', sni: ODS } });
  });

  it.skipIf(!openssl)('openssl s_client with another name in SNI is cut off (event 122) and never reaches the server', async () => {
    const since = gw.logs.length;
    const before = ods.connections;
    const r = await sClient(['-connect', `${ODS}:${ods.port}`, '-servername', 'other.example.com', '-CAfile', ods.caFile]);
    expect(r.out).toMatch(/Cipher is \(NONE\)/);
    const rec = await refusalLog('PCL_ERR_TLS_SNI_MISMATCH', since);
    expect(rec).toMatchObject({ event: 122, verdict: 'deny', reason: 'tls_sni_mismatch', rule: 'ods', tls: { result: 'refused', sni: 'other.example.com' } });
    // The gateway dialled the server, but the ClientHello was held back: no TLS handshake happened there.
    expect(ods.connections).toBe(before + 1);
    expect(rec.bytesUp).toBe(0);
  });

  it.skipIf(!openssl)('openssl s_client with the right SNI completes the handshake', async () => {
    const r = await sClient(['-connect', `${ODS}:${ods.port}`, '-servername', ODS, '-CAfile', ods.caFile]);
    expect(r.out).toMatch(/New, TLSv1\.3, Cipher is /);
  });

  it.skipIf(!openssl)('a TLS 1.1-only ClientHello (openssl s_client -tls1_1) is refused with event 106', async () => {
    const since = gw.logs.length;
    const r = await sClient(['-connect', `${ODS}:${ods.port}`, '-servername', ODS, '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    expect(r.code).not.toBe(0);
    const rec = await refusalLog('PCL_ERR_TLS_VERSION', since);
    expect(rec).toMatchObject({ event: 106, verdict: 'deny', reason: 'tls_version', tls: { result: 'refused', offered: '1.1' } });
  });

  it.skipIf(!curl)('plain HTTP inside a tunnel on a rule that requires TLS (curl --proxytunnel) is refused with event 402', async () => {
    const since = gw.logs.length;
    const r = await run(curl!, ['-sS', '-p', '-x', `http://127.0.0.1:${gw.port}`, `http://${PLAIN}:${echo.port}/`]);
    expect(r.code).not.toBe(0);
    const rec = await refusalLog('PCL_ERR_TLS_REQUIRED', since);
    expect(rec).toMatchObject({ event: 402, verdict: 'deny', reason: 'tls_required', rule: 'plain', bytesUp: 0 });
  });

  it('bytes that came with the CONNECT are judged before the 200 goes out: a refusal closes without it', async () => {
    const since = gw.logs.length;
    await expect(openTunnel(gw.port, `${PLAIN}:${echo.port}`, Buffer.from('GET / HTTP/1.1\r\n\r\n'))).rejects.toThrow(/closed before the response head/);
    await refusalLog('PCL_ERR_TLS_REQUIRED', since);
  });

  it.skipIf(!openssl)('report mode logs a mismatched SNI (event 111) and lets the tunnel through', async () => {
    const since = gw.logs.length;
    const r = await sClient(['-connect', `${REPORTED}:${ods.port}`, '-servername', ODS, '-CAfile', ods.caFile]);
    expect(r.out).toMatch(/New, TLSv1\.3, Cipher is /);
    const line = await gw.waitForLog((l) => l.event === 111 && l.code === 'PCL_ERR_TLS_SNI_MISMATCH', 10_000, since);
    expect(line.rule).toBe('reported');
    const rec = await gw.waitForLog((l) => l.msg === 'access' && l.rule === 'reported', 10_000, since);
    expect(rec).toMatchObject({ verdict: 'report', reason: 'tls_sni_mismatch', tls: { result: 'reported' } });
  });
});

describe('TLS 1.2 client certificates (clients.certificates)', () => {
  const url = (): string => `https://${MTLS}:${mtls.port}/agent`;

  it.skipIf(!curl)('a listed agent certificate passes; the subject and thumbprint are logged', async () => {
    const since = gw.logs.length;
    const ca = await testCA();
    const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${gw.port}`, '--cacert', ca.caFile, '--cert', good.cert, '--key', good.key, url()]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, url: '/agent' });
    const rec = await gw.waitForLog((l) => l.msg === 'access' && l.rule === 'mtls', 10_000, since);
    const tls = rec.tls as { result: string; chosen: string; clientCert: { subject: string; thumbprint: string } };
    expect(tls).toMatchObject({ result: 'passed', chosen: '1.2' });
    expect(tls.clientCert.subject).toContain(`CN=${GOOD_AGENT}`);
    expect(tls.clientCert.thumbprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it.skipIf(!curl)('an agent certificate that is not listed is refused (event 105) before the server sees it', async () => {
    const since = gw.logs.length;
    const ca = await testCA();
    const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${gw.port}`, '--cacert', ca.caFile, '--cert', bad.cert, '--key', bad.key, url()]);
    expect(r.code).not.toBe(0);
    const rec = await refusalLog('PCL_ERR_TLS_CLIENT_CERT', since);
    expect(rec).toMatchObject({ event: 105, verdict: 'deny', reason: 'tls_client_cert', rule: 'mtls' });
    expect(String(rec.detail)).toContain(BAD_AGENT);
  });

  it.skipIf(!curl)('no certificate at all, when the server asks for one, is refused too', async () => {
    const since = gw.logs.length;
    const ca = await testCA();
    const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${gw.port}`, '--cacert', ca.caFile, url()]);
    expect(r.code).not.toBe(0);
    await refusalLog('PCL_ERR_TLS_CLIENT_CERT', since);
  });

  it.skipIf(!curl)('a reload that lists the other agent by thumbprint lets it through at once', async () => {
    const ca = await testCA();
    const thumbprint = new X509Certificate(readFileSync(bad.cert)).fingerprint256; // AB:CD:... as Node prints it
    const clients = config.clients as { certificates: { subjects: string[] } };
    await gw.reload({ ...config, clients: { certificates: { ...clients.certificates, thumbprintsSha256: [thumbprint] } } });
    const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${gw.port}`, '--cacert', ca.caFile, '--cert', bad.cert, '--key', bad.key, url()]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
    await gw.reload(config);
  });

  it.skipIf(!curl)('with relay: js the checked handshake goes on in the JavaScript relay', async () => {
    const jsGw = await startGateway({ ...config, proxy: { relay: 'js' } });
    try {
      const ca = await testCA();
      const r = await run(curl!, ['-sS', '-x', `http://127.0.0.1:${jsGw.port}`, '--cacert', ca.caFile, '--cert', good.cert, '--key', good.key, url()]);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, url: '/agent' });
      const rec = await jsGw.waitForLog((l) => l.msg === 'access' && l.rule === 'mtls');
      expect(rec).toMatchObject({ relay: 'js', tls: { result: 'passed', chosen: '1.2' } });
    } finally {
      await jsGw.stop();
    }
  });

  it.skipIf(!curl)('the metrics count inspections by result and client versions', async () => {
    expect(await metric(gw.adminPort, 'portcullis_tls_inspections_total', { result: 'refused' })).toBeGreaterThanOrEqual(4);
    expect(await metric(gw.adminPort, 'portcullis_tls_inspections_total', { result: 'passed' })).toBeGreaterThanOrEqual(2);
    expect(await metric(gw.adminPort, 'portcullis_tls_client_versions_total', { version: '1.1' })).toBeGreaterThanOrEqual(1);
    expect(await metric(gw.adminPort, 'portcullis_tls_client_certificates_total', { result: 'refused' })).toBeGreaterThanOrEqual(1);
    expect(await metric(gw.adminPort, 'portcullis_rejections_total', { reason: 'tls_sni_mismatch' })).toBeGreaterThanOrEqual(1);
  });
});

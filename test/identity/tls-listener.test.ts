/**
 * The TLS proxy listener with client certificates, and `portcullis cert` run as a user runs it:
 * curl --proxy https://... with a client certificate issued by the CLI gets through; an unlisted
 * certificate is refused with event 105; no certificate when one is required is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startHttpServer, type TestServer } from '../helpers/servers.js';
import { requireBinary, run } from '../helpers/system.js';
import { testCA } from '../helpers/tls.js';

const curl = requireBinary('curl');
const openssl = requireBinary('openssl');
const ready = curl !== null && openssl !== null;

const SUBJECT = 'CN=agent-1, OU=ops, O=Example';

let dir: string;
let web: TestServer;
let gw: GatewayProcess;
let tlsPort: number;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, 'cert', ...args]);
}

beforeAll(async () => {
  if (!ready) return;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-certs-'));
  const steps = [
    ['ca', 'create', '--out-dir', join(dir, 'ca'), '--cn', 'Test Gateway CA', '--days', '30'],
    ['server', 'issue', '--ca', join(dir, 'ca'), '--ip', '127.0.0.1', '--dns', 'localhost', '--out-dir', join(dir, 'srv')],
    ['client', 'issue', '--ca', join(dir, 'ca'), '--cn', 'agent-1', '--ou', 'ops', '--o', 'Example', '--out-dir', join(dir, 'cl'), '--name', 'listed'],
    ['client', 'issue', '--ca', join(dir, 'ca'), '--cn', 'stranger', '--out-dir', join(dir, 'cl'), '--name', 'unlisted'],
  ];
  for (const s of steps) {
    const r = await cli(...s);
    expect(r.code, `cert ${s.join(' ')}: ${r.stderr}`).toBe(0);
  }
  web = await startHttpServer();
  gw = await startGateway({
    proxy: {
      tls: {
        listen: ['127.0.0.1:0'],
        certFile: join(dir, 'srv', 'server.pem'),
        keyFile: join(dir, 'srv', 'server.key'),
        clientCaFile: join(dir, 'ca', 'ca.pem'),
        requireClientCert: true,
      },
    },
    allow: {
      presets: [],
      rules: [
        { name: 'x', hosts: ['x.example.com'], ports: [web.port], allowPrivate: true },
        { name: 'y', hosts: ['y.example.com'], ports: [web.port], allowPrivate: true },
      ],
    },
    clients: {
      certificates: { subjects: [SUBJECT] },
      groups: [{ name: 'agents', subjects: [SUBJECT], rules: ['x'] }],
    },
    dns: { overrides: { 'x.example.com': '127.0.0.1', 'y.example.com': '127.0.0.1' } },
  });
  const listening = gw.logs.find((r) => r.msg === 'proxy listening');
  const bound = (listening?.listen ?? []) as Array<{ port: number; tls?: boolean }>;
  tlsPort = bound.find((b) => b.tls === true)?.port ?? 0;
  expect(tlsPort).toBeGreaterThan(0);
});

afterAll(async () => {
  await gw?.stop();
  await web?.close();
});

async function viaTlsProxy(opts: {
  cert?: string;
  host?: 'x' | 'y';
  tunnel: boolean;
  key?: string;
}): Promise<{ status: number; connect: number; out: string; err: string }> {
  const args = ['-sS', '-w', '\n%{http_code} %{http_connect}', '--proxy', `https://127.0.0.1:${tlsPort}`, '--proxy-cacert', join(dir, 'ca', 'ca.pem')];
  if (opts.cert !== undefined) args.push('--proxy-cert', opts.cert, '--proxy-key', opts.key ?? opts.cert.replace(/\.pem$/, '.key'));
  if (opts.tunnel) args.push('-p');
  args.push(`http://${opts.host ?? 'x'}.example.com:${web.port}/`);
  const r = await run(curl!, args);
  const nl = r.stdout.lastIndexOf('\n');
  const [status = '0', connect = '0'] = r.stdout.slice(nl + 1).split(' ');
  return { status: Number(status), connect: Number(connect), out: r.stdout.slice(0, nl), err: r.stderr };
}

describe.skipIf(!ready)('portcullis cert', () => {
  it('writes keys readable by the owner only, certificates readable by all', () => {
    for (const f of ['ca/ca.key', 'srv/server.key', 'cl/listed.key', 'cl/unlisted.key']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    for (const f of ['ca/ca.pem', 'srv/server.pem', 'cl/listed.pem']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o644);
  });

  it('cert show prints what openssl sees: subject, issuer, names, SHA-256 thumbprint', async () => {
    const show = await cli('show', join(dir, 'cl', 'listed.pem'));
    expect(show.code, show.stderr).toBe(0);
    const fp = await run(openssl!, ['x509', '-in', join(dir, 'cl', 'listed.pem'), '-noout', '-fingerprint', '-sha256']);
    const thumb = fp.stdout.trim().split('=')[1] ?? 'none';
    expect(show.stdout).toContain(`sha256:     ${thumb}`);
    expect(show.stdout).toContain(`subject:    ${SUBJECT}`);
    expect(show.stdout).toContain('issuer:     CN=Test Gateway CA');
    const server = await cli('show', '--json', join(dir, 'srv', 'server.pem'));
    const facts = JSON.parse(server.stdout) as { subjectAltNames: string[]; isCa: boolean; notAfter: string };
    expect(facts.subjectAltNames).toEqual(expect.arrayContaining(['DNS:localhost', 'IP Address:127.0.0.1']));
    expect(facts.isCa).toBe(false);
    const verify = await run(openssl!, ['verify', '-CAfile', join(dir, 'ca', 'ca.pem'), join(dir, 'srv', 'server.pem'), join(dir, 'cl', 'listed.pem')]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('refuses to overwrite without --force, and says why on stderr', async () => {
    const again = await cli('ca', 'create', '--out-dir', join(dir, 'ca'));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('exists (--force replaces it)');
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    const bad = await cli('show', junk);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('holds no PEM certificate');
    expect(readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });
});

describe.skipIf(!ready)('TLS proxy listener (curl --proxy https://...)', () => {
  it('a listed client certificate gets through, for plain HTTP and a CONNECT tunnel relayed in JavaScript', async () => {
    const plain = await viaTlsProxy({ cert: join(dir, 'cl', 'listed.pem'), tunnel: false });
    expect(plain.status, plain.err).toBe(200);
    const tunnel = await viaTlsProxy({ cert: join(dir, 'cl', 'listed.pem'), tunnel: true });
    expect(tunnel.connect, tunnel.err).toBe(200);
    expect(tunnel.status).toBe(200);
    expect(tunnel.out).toContain('"ok":true');
    const rec = await gw.waitForLog((r) => r.event === 103 && r.identity === SUBJECT && r.verdict === 'allow');
    // The native relay moves bytes between plain descriptors: a TLS client's tunnel is relayed in JS, and says why.
    expect(rec).toMatchObject({ relay: 'js', relayFallback: 'tls_client', rule: 'x' });
    await gw.waitForLog((r) => r.event === 109 && r.identity === SUBJECT);
  });

  it("the certificate's subject is the identity for group allowlists", async () => {
    const other = await viaTlsProxy({ cert: join(dir, 'cl', 'listed.pem'), tunnel: true, host: 'y' });
    expect(other.connect).toBe(403);
    await gw.waitForLog((r) => r.event === 105 && r.identity === SUBJECT && typeof r.detail === 'string' && r.detail.includes('group agents'));
  });

  it('a certificate from the CA that clients.certificates does not list is refused with event 105', async () => {
    const r = await viaTlsProxy({ cert: join(dir, 'cl', 'unlisted.pem'), tunnel: true });
    expect(r.connect).toBe(403);
    const plain = await viaTlsProxy({ cert: join(dir, 'cl', 'unlisted.pem'), tunnel: false });
    expect(plain.status).toBe(403);
    expect(plain.out).toContain('PCL_ERR_CLIENT_CERT_NOT_ALLOWED');
    const rec = await gw.waitForLog((x) => x.code === 'PCL_ERR_CLIENT_CERT_NOT_ALLOWED');
    expect(rec).toMatchObject({ event: 105, status: 403, reason: 'client_cert_not_allowed', identity: 'CN=stranger' });
  });

  it('no client certificate where one is required is refused; one from another CA is untrusted', async () => {
    const none = await viaTlsProxy({ tunnel: false });
    expect(none.status).toBe(403);
    expect(none.out).toContain('PCL_ERR_CLIENT_CERT_REQUIRED');
    const ca = await testCA();
    const foreign = await ca.issueClient({ commonNames: ['agent-1'], organizationalUnit: 'ops', organization: 'Example' });
    const certFile = join(dir, 'foreign.pem');
    const keyFile = join(dir, 'foreign.key');
    writeFileSync(certFile, foreign.certPem);
    writeFileSync(keyFile, foreign.keyPem, { mode: 0o600 });
    const untrusted = await viaTlsProxy({ cert: certFile, key: keyFile, tunnel: false });
    expect(untrusted.status).toBe(403);
    expect(untrusted.out).toContain('PCL_ERR_CLIENT_CERT_UNTRUSTED');
    await gw.waitForLog((r) => r.code === 'PCL_ERR_CLIENT_CERT_REQUIRED' && r.event === 105);
  });

  it('the plain listener keeps working next to it (no certificate asked there)', async () => {
    const r = await run(curl!, ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${gw.port}`, `http://x.example.com:${web.port}/`]);
    expect(r.stdout).toBe('200');
  });
});

describe.skipIf(!ready)('TLS proxy listener in cluster mode', () => {
  it('every worker serves it (bound like proxy.listen, shared by the workers), with the same certificate checks', async () => {
    const cluster = await startGateway(
      {
        proxy: {
          workers: 2,
          tls: {
            listen: ['127.0.0.1:0'],
            certFile: join(dir, 'srv', 'server.pem'),
            keyFile: join(dir, 'srv', 'server.key'),
            clientCaFile: join(dir, 'ca', 'ca.pem'),
          },
        },
        allow: { presets: [], rules: [{ name: 'x', hosts: ['x.example.com'], ports: [web.port], allowPrivate: true }] },
        clients: { certificates: { thumbprintsSha256: [] as string[], subjects: [SUBJECT] } },
        dns: { overrides: { 'x.example.com': '127.0.0.1' } },
      },
      { listenTimeoutMs: 45_000 },
    );
    try {
      const listening = cluster.logs.find((r) => r.msg === 'proxy listening');
      const port = ((listening?.listen ?? []) as Array<{ port: number; tls?: boolean }>).find((b) => b.tls === true)?.port ?? 0;
      expect(port).toBeGreaterThan(0);
      const base = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--proxy', `https://127.0.0.1:${port}`, '--proxy-cacert', join(dir, 'ca', 'ca.pem')];
      const url = `http://x.example.com:${web.port}/`;
      for (let i = 0; i < 6; i++) {
        const ok = await run(curl!, [...base, '--proxy-cert', join(dir, 'cl', 'listed.pem'), '--proxy-key', join(dir, 'cl', 'listed.key'), url]);
        expect(ok.stdout, ok.stderr).toBe('200');
      }
      const refused = await run(curl!, [...base, '--proxy-cert', join(dir, 'cl', 'unlisted.pem'), '--proxy-key', join(dir, 'cl', 'unlisted.key'), url]);
      expect(refused.stdout).toBe('403');
      // Without requireClientCert a client without a certificate is let in, anonymous.
      const anonymous = await run(curl!, [...base, url]);
      expect(anonymous.stdout).toBe('200');
      await cluster.waitForLog((r) => r.event === 109 && r.identity === SUBJECT);
      await cluster.waitForLog((r) => r.code === 'PCL_ERR_CLIENT_CERT_NOT_ALLOWED' && r.event === 105);
    } finally {
      await cluster.stop();
    }
    // A supervisor and two workers start slowly on a loaded 2-core machine (the 15 s listen wait was hit once).
  }, 60_000);
});

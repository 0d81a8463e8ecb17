import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { apr1, Authenticator, parseBasic, parseHtpasswd, verifyEntry } from '../../src/auth/index.js';
import { compileCertificateAllowlist, compilePolicy, type ClientIdentity, displaySubject, normaliseThumbprint, subjectKey } from '../../src/policy/index.js';
import { parseConnectAuthority } from '../../src/address/host.js';
import { CLIENT, makeConfig } from '../policy/helpers.js';
import { parseConfig } from '../../src/config/index.js';

describe('htpasswd schemes', () => {
  it('apr1 matches what `openssl passwd -apr1` prints', () => {
    // openssl passwd -apr1 -salt abcdefgh 'pa:ss wörd'; openssl passwd -apr1 -salt xy ''
    expect(apr1('pa:ss wörd', 'abcdefgh')).toBe('$apr1$abcdefgh$heejsnde5T6g6eroYlT2k/');
    expect(apr1('', 'xy')).toBe('$apr1$xy$43..WIhbfuznGvwoCyUek/');
  });

  it('verifies bcrypt ($2y$ as htpasswd -B writes it), apr1 and {SHA}; refuses wrong passwords', async () => {
    const file = parseHtpasswd(
      [
        `alice:${bcrypt.hashSync('a', 4).replace(/^\$2b\$/, '$2y$')}`,
        'bob:$apr1$abcdefgh$heejsnde5T6g6eroYlT2k/',
        'carol:{SHA}lcsL/Sl3x2EpjZYk5LTUxyo5l0o=', // htpasswd -nbs carol y
        '# comment',
        '',
        'dave:abcdefghijklm',
        'bob:{SHA}x',
      ].join('\n'),
    );
    expect([...file.users.keys()]).toEqual(['alice', 'bob', 'carol']);
    expect(file.skipped.map((s) => s.line)).toEqual([6, 7]);
    const entry = (u: string) => file.users.get(u) ?? expect.unreachable();
    expect(await verifyEntry(entry('alice'), 'a')).toBe(true);
    expect(await verifyEntry(entry('alice'), 'b')).toBe(false);
    expect(await verifyEntry(entry('bob'), 'pa:ss wörd')).toBe(true);
    expect(await verifyEntry(entry('bob'), 'pa:ss word')).toBe(false);
    expect(await verifyEntry(entry('carol'), 'y')).toBe(true);
    expect(await verifyEntry(entry('carol'), 'Y')).toBe(false);
  });

  it('parses Basic credentials; a password may hold colons', () => {
    expect(parseBasic('Basic ' + Buffer.from('u:p:q').toString('base64'))).toEqual({ user: 'u', password: 'p:q' });
    expect(parseBasic('basic   ' + Buffer.from('u:').toString('base64'))).toEqual({ user: 'u', password: '' });
    expect(parseBasic('Bearer abc')).toBeNull();
    expect(parseBasic('Basic ' + Buffer.from('nocolon').toString('base64'))).toBeNull();
    expect(parseBasic(undefined)).toBeNull();
  });
});

describe('Authenticator', () => {
  const header = (u: string, p: string): string => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
  const fileWith = (text: string): string => {
    const f = join(mkdtempSync(join(tmpdir(), 'portcullis-htpasswd-')), 'htpasswd');
    writeFileSync(f, text);
    return f;
  };

  it('remembers a success, limits failures per address, and forgets everything on reload', async () => {
    const file = fileWith('carol:{SHA}lcsL/Sl3x2EpjZYk5LTUxyo5l0o=\n');
    const auth = new Authenticator({ htpasswdFile: file, realm: 'r', maxFailuresPerMinute: 2, cacheTtlMs: 60_000 });
    const t = 1_000_000;
    expect(await auth.check(undefined, '10.0.0.1', t)).toEqual({ ok: false, why: 'missing' });
    expect(await auth.check(header('carol', 'y'), '10.0.0.1', t)).toEqual({ ok: true, user: 'carol' });
    expect(await auth.check(header('carol', 'n'), '10.0.0.2', t)).toMatchObject({ ok: false, why: 'failed', userKnown: true });
    expect(await auth.check(header('x', 'n'), '10.0.0.2', t)).toMatchObject({ ok: false, why: 'failed', userKnown: false });
    expect(await auth.check(header('carol', 'n'), '10.0.0.2', t)).toMatchObject({ ok: false, why: 'limited' });
    // Remembered from before: no verification needed, so the limit does not apply.
    expect(await auth.check(header('carol', 'y'), '10.0.0.2', t)).toEqual({ ok: true, user: 'carol' });
    // A minute later the address starts afresh.
    expect(await auth.check(header('carol', 'n'), '10.0.0.2', t + 60_000)).toMatchObject({ why: 'failed' });
    // carol removed: the reload empties the cache at once.
    writeFileSync(file, 'other:{SHA}lcsL/Sl3x2EpjZYk5LTUxyo5l0o=\n');
    auth.reconfigure({ htpasswdFile: file, realm: 'r', maxFailuresPerMinute: 0, cacheTtlMs: 60_000 });
    expect(await auth.check(header('carol', 'y'), '10.0.0.1', t + 1)).toMatchObject({ ok: false, why: 'failed' });
    expect(await auth.check(header('other', 'y'), '10.0.0.1', t + 1)).toEqual({ ok: true, user: 'other' });
  });

  it('cannot be built on a file it cannot read (PCL_ERR_PROXY_AUTH_FILE, naming the key and file)', () => {
    expect(() => new Authenticator({ htpasswdFile: '/nonexistent/htpasswd', realm: 'r', maxFailuresPerMinute: 1, cacheTtlMs: 0 })).toThrow(
      expect.objectContaining({ code: 'PCL_ERR_PROXY_AUTH_FILE', message: expect.stringContaining('proxy.auth.htpasswdFile /nonexistent/htpasswd') }),
    );
  });
});

describe('client-certificate subjects and thumbprints', () => {
  it('compares subjects whatever the attribute order and case of the attribute names', () => {
    expect(subjectKey('CN=ws, CN=agent, OU=Microsoft Monitoring Agent, O=Microsoft')).toBe(
      subjectKey('o=Microsoft, ou=Microsoft Monitoring Agent, cn=agent, cn=ws'),
    );
    expect(subjectKey('CN=a')).not.toBe(subjectKey('CN=b'));
    expect(subjectKey('no equals sign')).toBeNull();
    expect(displaySubject('O=Example\nOU=ops\nCN=a')).toBe('CN=a, OU=ops, O=Example');
  });

  it('allows a listed subject or thumbprint (colons and case optional); both lists empty allow all', () => {
    const hex = 'ab'.repeat(32);
    const list = compileCertificateAllowlist({ subjects: ['CN=agent-1, O=Example'], thumbprintsSha256: [hex.toUpperCase().match(/../g)?.join(':') ?? ''] });
    expect(list.active).toBe(true);
    expect(list.allows('O=Example, CN=agent-1', 'cd'.repeat(32))).toBe(true);
    expect(list.allows('CN=other', hex)).toBe(true);
    expect(list.allows('CN=other', 'cd'.repeat(32))).toBe(false);
    expect(compileCertificateAllowlist({ subjects: [], thumbprintsSha256: [] }).allows('CN=any', '')).toBe(true);
    expect(normaliseThumbprint('AB:'.repeat(31) + 'AB')).toBe(hex);
  });
});

describe('group allowlists (clients.groups)', () => {
  const config = makeConfig({
    rules: [
      { name: 'x', hosts: ['x.example.com'] },
      { name: 'y', hosts: ['y.example.com'] },
      { name: 'z', hosts: ['z.example.com'] },
    ],
    groups: [
      { name: 'gx', users: ['alice'], subjects: [], cidrs: [], rules: ['x'] },
      { name: 'gy', users: ['bob'], subjects: ['CN=agent, O=Example'], cidrs: [], rules: ['y'] },
      { name: 'lab', users: [], subjects: [], cidrs: ['10.1.0.0/16'], rules: ['z'] },
    ],
  });
  const policy = compilePolicy(config);
  const at = (host: string, identity: ClientIdentity, client = '192.0.2.1') =>
    policy.decide({ target: parseConnectAuthority(`${host}:443`), client, identity });

  it('a user in a group reaches only its rules, with the groups named in the detail', () => {
    expect(at('x.example.com', { kind: 'user', user: 'alice' }).verdict).toBe('allow');
    const d = at('y.example.com', { kind: 'user', user: 'alice' });
    expect(d).toMatchObject({ verdict: 'deny', reason: 'host_not_allowed', detail: 'alice is in group gx, whose rules do not allow this destination' });
  });

  it('a certificate subject matches like clients.certificates (any order)', () => {
    const id = { kind: 'certificate', subject: 'O=Example, CN=agent', thumbprintSha256: '' } as const;
    expect(at('y.example.com', id).verdict).toBe('allow');
    expect(at('x.example.com', id).verdict).toBe('deny');
  });

  it('several matching groups give the union of their rules; no group means every rule', () => {
    // bob from the lab network: gy and lab.
    expect(at('y.example.com', { kind: 'user', user: 'bob' }, CLIENT).verdict).toBe('allow');
    expect(at('z.example.com', { kind: 'user', user: 'bob' }, CLIENT).verdict).toBe('allow');
    expect(at('x.example.com', { kind: 'user', user: 'bob' }, CLIENT)).toMatchObject({ verdict: 'deny', detail: expect.stringContaining('groups gy, lab') });
    for (const host of ['x.example.com', 'y.example.com', 'z.example.com']) expect(at(host, { kind: 'user', user: 'carol' }).verdict).toBe('allow');
    expect(at('x.example.com', { kind: 'anonymous' }).verdict).toBe('allow');
    expect(at('x.example.com', { kind: 'anonymous' }, CLIENT).verdict).toBe('deny');
  });
});

describe('config checks for client identity', () => {
  const issues = (yaml: string): string[] => {
    try {
      parseConfig(yaml, { source: 't.yaml' });
      return [];
    } catch (err) {
      return ((err as { issues?: Array<{ path: string; message: string }> }).issues ?? []).map((i) => `${i.path}: ${i.message}`);
    }
  };

  it('a group names rules that exist (allow.rules or a preset in use) and valid CIDRs', () => {
    const found = issues(
      'allow:\n  presets: [azure-public]\n  rules: [{ name: crl, hosts: [crl.example.com], ports: [80] }]\n' +
        'clients:\n  groups:\n    - { name: a, users: [u], rules: [crl, azure-public, nope], cidrs: [10.0.0.0/33] }\n',
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/clients\.groups\[0\]\.rules\[2\].*"nope" is neither/),
        expect.stringMatching(/clients\.groups\[0\]\.cidrs\[0\]/),
      ]),
    );
  });

  it('requireClientCert and listed certificates need the TLS listener to have clientCaFile', () => {
    const found = issues(
      'proxy:\n  tls: { listen: ["127.0.0.1:9443"], certFile: c.pem, keyFile: k.pem, requireClientCert: true }\n' +
        'clients:\n  certificates: { subjects: ["CN=a"] }\n',
    );
    expect(found).toEqual(
      expect.arrayContaining([expect.stringContaining('needs proxy.tls.clientCaFile'), expect.stringContaining('clients.certificates lists certificates')]),
    );
  });
});

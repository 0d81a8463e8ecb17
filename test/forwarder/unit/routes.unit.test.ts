import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/index.js';
import { forwarderConfigCheck, identityByApiKey, normalizeSubject, compileForwarder, sha256 } from '../../../src/forwarder/routes.js';

const dir = mkdtempSync(join(tmpdir(), 'pcl-routes-'));
writeFileSync(join(dir, 'ws.key'), Buffer.from('k'.repeat(32)).toString('base64'));
writeFileSync(join(dir, 'secret'), 's');
const WS = '11111111-1111-1111-1111-111111111111';

function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    plaintext: true,
    credentials: [{ name: 'main', type: 'clientSecret', tenantId: 't', clientId: 'c', secretFile: join(dir, 'secret') }],
    destinations: [
      { name: 'dcr', type: 'logsIngestion', endpoint: 'https://x.eastus-1.ingest.monitor.azure.com', dcrId: 'dcr-1', credential: 'main' },
      { name: 'ws', type: 'dataCollector', workspaceId: WS, sharedKeyFile: join(dir, 'ws.key') },
    ],
    routes: [
      { name: 'app', from: { dcrId: 'in', stream: 'Custom-A_CL' }, to: 'dcr' },
      { name: 'fw', from: { workspaceId: WS, logType: 'Fw' }, to: 'dcr', stream: 'Custom-Fw_CL' },
      { name: 'raw', from: { workspaceId: WS, logType: 'Raw' }, to: 'ws' },
    ],
    identities: [
      { name: 'k', apiKeySha256: sha256('key-1').toString('hex'), routes: ['app'] },
      { name: 'sk', sharedKey: { workspaceId: WS, keyFile: join(dir, 'ws.key') }, routes: ['fw', 'raw'] },
    ],
    ...over,
  };
}

function issues(forwarder: Record<string, unknown>): string[] {
  try {
    parseConfig(stringify({ forwarder }), { checks: [(c) => forwarderConfigCheck(c, {})], env: {} });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
}

describe('forwarder config', () => {
  it('is absent (disabled) by default, and a valid section compiles with defaults filled in', () => {
    expect(parseConfig('', { env: {} }).forwarder).toBeUndefined();
    const cfg = parseConfig(stringify({ forwarder: base() }), { env: {} });
    expect(cfg.forwarder?.spool).toMatchObject({ dir: '/var/lib/portcullis/spool', fsync: 'always', maxBytes: 1073741824 });
    expect(cfg.forwarder?.batch).toEqual({ maxBytes: 1048576, maxAgeMs: 1000, gzipLevel: 1, ordered: true });
    expect(cfg.forwarder?.pool.threads).toBe(0);
    if (!cfg.forwarder) throw new Error('no forwarder section');
    const compiled = compileForwarder(cfg.forwarder, {});
    expect(compiled.routes.get('fw')).toMatchObject({ inbound: 'dataCollector', translate: true, upstream: 'Custom-Fw_CL' });
    expect(compiled.routes.get('raw')).toMatchObject({ translate: false, upstream: 'Raw' });
    expect(identityByApiKey(compiled.identities, 'key-1')?.name).toBe('k');
    expect(identityByApiKey(compiled.identities, 'key-2')).toBeNull();
  });

  it('names each semantic problem by its key', () => {
    const b = base();
    const found = issues({
      ...b,
      plaintext: false,
      routes: [
        { name: 'app', from: { dcrId: 'in', stream: 'S' }, to: 'nowhere' },
        { name: 'fw', from: { workspaceId: WS, logType: 'Fw' }, to: 'dcr' },
        { name: 'mixed', from: { dcrId: 'in', logType: 'X' }, to: 'dcr' },
      ],
      identities: [
        { name: 'k', apiKeySha256: sha256('x').toString('hex'), routes: ['app', 'ghost'] },
        { name: 'none', routes: ['app'] },
      ],
      credentials: [{ name: 'main', type: 'clientSecret', tenantId: 't', clientId: 'c', secretFile: join(dir, 'missing') }],
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^forwarder\.tls: required unless plaintext: true/),
        expect.stringMatching(/^forwarder\.credentials\[0\]\.secretFile: .*missing: no such file/),
        expect.stringMatching(/^forwarder\.routes\[0\]\.to: no destination named "nowhere"/),
        expect.stringMatching(/^forwarder\.routes\[1\]\.stream: required: the upstream stream/),
        expect.stringMatching(/^forwarder\.routes\[2\]\.from: must be either/),
        expect.stringMatching(/^forwarder\.identities\[0\]\.routes\[1\]: no route named "ghost"/),
        expect.stringMatching(/^forwarder\.identities\[1\]: needs apiKeySha256, sharedKey or clientCert/),
      ]),
    );
  });

  it('takes the Entra client secret from secretFile or secretEnv, exactly one, and names an unset variable', () => {
    const cred = (extra: Record<string, unknown>): Record<string, unknown> => ({
      ...base(),
      credentials: [{ name: 'main', type: 'clientSecret', tenantId: 't', clientId: 'c', ...extra }],
    });
    expect(issues(cred({ secretEnv: 'PCL_TEST_UNSET_SECRET' }))).toEqual([
      'forwarder.credentials[0].secretEnv: environment variable PCL_TEST_UNSET_SECRET is not set (PCL_ERR_SECRET_ENV)',
    ]);
    expect(issues(cred({ secretFile: join(dir, 'secret'), secretEnv: 'X' }))).toEqual([
      'forwarder.credentials[0].secretEnv: give only one of secretFile, secretEnv',
    ]);
    expect(issues(cred({}))).toEqual([expect.stringMatching(/^forwarder\.credentials\[0\]: clientSecret needs secretFile or secretEnv/)]);
  });

  it('the schema explains bad values', () => {
    expect(issues({ ...base(), batch: { maxBytes: 2_000_000 } })).toEqual([expect.stringMatching(/^forwarder\.batch\.maxBytes: must be from 1024 to 1048576/)]);
    expect(issues({ ...base(), spool: { fsync: 'sometimes' } })).toEqual([
      expect.stringMatching(/^forwarder\.spool\.fsync: must be one of "always", "interval", "never"/),
    ]);
    expect(issues({ ...base(), lisen: 'x' })).toEqual([expect.stringMatching(/^forwarder\.lisen: unknown key \(did you mean "listen"\?\)/)]);
  });

  it('certificate subjects compare regardless of order, spacing and attribute case', () => {
    expect(normalizeSubject('CN=agent-1, O=Contoso')).toBe(normalizeSubject('o=Contoso\nCN=agent-1'));
    expect(normalizeSubject('CN=a,CN=b')).not.toBe(normalizeSubject('CN=a'));
  });
});

/** clients.certificates: how subjects and thumbprints are compared (docs/tls-inspection.md). */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { certificateIdentity, compileCertificateAllowlist, normaliseSubject } from '../../src/tls/index.js';
import { testCA } from '../helpers/tls.js';

const WS = '4f0c7d1e-8a3b-4c5d-9e6f-0a1b2c3d4e5f';
const AGENT = '0A1B2C3D-0000-4000-8000-000000000001';

describe('subjects', () => {
  it('compares the Windows form, the OpenSSL one-line form and the multi-line form as one', () => {
    const windows = `CN=${WS}, CN=${AGENT}, OU=Microsoft Monitoring Agent, O=Microsoft`;
    const oneLine = `/O=Microsoft/OU=Microsoft Monitoring Agent/CN=${AGENT}/CN=${WS}`;
    const multi = `O=Microsoft\nOU=Microsoft  Monitoring Agent\nCN=${AGENT.toLowerCase()}\ncn=${WS}`;
    expect(normaliseSubject(oneLine)).toBe(normaliseSubject(windows));
    expect(normaliseSubject(multi)).toBe(normaliseSubject(windows));
  });

  it('tells different subjects apart, and S/ST, E/emailAddress are one attribute', () => {
    expect(normaliseSubject('CN=a, O=x')).not.toBe(normaliseSubject('CN=b, O=x'));
    expect(normaliseSubject('CN=a')).not.toBe(normaliseSubject('CN=a, O=x'));
    expect(normaliseSubject('S=Bavaria, CN=a')).toBe(normaliseSubject('ST=Bavaria, CN=a'));
    expect(normaliseSubject('E=a@b.example')).toBe(normaliseSubject('emailAddress=a@b.example'));
  });

  it('gives nothing for text that is not attribute=value pairs (it can never match)', () => {
    expect(normaliseSubject('just a name')).toBe('');
    expect(compileCertificateAllowlist({ subjects: ['just a name'], thumbprintsSha256: [] }).empty).toBe(true);
  });
});

describe('the allowlist against a real certificate', () => {
  it('allows by subject (as Windows prints it) or by thumbprint (with colons, any case), and nothing else', async () => {
    const ca = await testCA();
    const issued = await ca.issueClient({ commonNames: [WS, AGENT], organizationalUnit: 'Microsoft Monitoring Agent', organization: 'Microsoft' });
    const other = await ca.issueClient({ commonNames: [WS, 'someone-else'], organizationalUnit: 'Microsoft Monitoring Agent', organization: 'Microsoft' });
    const der = new X509Certificate(issued.certPem).raw;
    const id = certificateIdentity(der);
    expect(id).not.toBeNull();
    if (!id) return;
    const otherId = certificateIdentity(new X509Certificate(other.certPem).raw);
    if (!otherId) throw new Error('other certificate does not parse');

    const bySubject = compileCertificateAllowlist({ subjects: [`CN=${WS}, CN=${AGENT}, OU=Microsoft Monitoring Agent, O=Microsoft`], thumbprintsSha256: [] });
    expect(bySubject.allows(id)).toBe(true);
    expect(bySubject.allows(otherId)).toBe(false);

    const colons = (id.thumbprint.toUpperCase().match(/../g) ?? []).join(':');
    const byThumbprint = compileCertificateAllowlist({ subjects: [], thumbprintsSha256: [colons] });
    expect(byThumbprint.allows(id)).toBe(true);
    expect(byThumbprint.allows(otherId)).toBe(false);
  });

  it('gives no identity for bytes that are not a certificate', () => {
    expect(certificateIdentity(Buffer.from('not a certificate'))).toBeNull();
  });
});

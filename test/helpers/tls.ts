/**
 * A per-process test CA (node-forge) and leaf certificates signed by it.
 * Keys come from node:crypto (native, ~50 ms for RSA 2048) rather than forge's pure-JS keygen;
 * forge only builds and signs the certificates. Both the CA and issued certs are memoised.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';

const { pki, md } = forge;
const generateKeyPairAsync = promisify(generateKeyPair);

export interface IssuedCert {
  keyPem: string;
  certPem: string;
}

export interface ClientCertSubject {
  /** In order, e.g. [workspaceId, agentGuid] for `CN=<ws>, CN=<agent>`. */
  commonNames: string[];
  organizationalUnit?: string;
  organization?: string;
}

export interface TestCA {
  caPem: string;
  /** PEM file of the CA certificate, for curl --cacert and the like. */
  caFile: string;
  /** Server certificate: SAN DNS names (IP SANs for IP literals), serverAuth EKU. */
  issue(names: string[]): Promise<IssuedCert>;
  /** Client certificate (clientAuth EKU) with the given subject, for mTLS tests. */
  issueClient(subject: ClientCertSubject): Promise<IssuedCert>;
}

interface KeyPair {
  keyPem: string;
  key: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

async function newKeyPair(): Promise<KeyPair> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const key = pki.privateKeyFromPem(privateKey);
  const publicKey = pki.setRsaPublicKey(key.n, key.e);
  return { keyPem: privateKey, key, publicKey };
}

function serial(): string {
  // Positive 16-byte serial (top bit clear).
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

function validity(cert: forge.pki.Certificate): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 24 * 3600 * 1000);
  cert.validity.notAfter = new Date(now + 30 * 24 * 3600 * 1000);
}

let caPromise: Promise<TestCA> | undefined;

export function testCA(): Promise<TestCA> {
  caPromise ??= createCA();
  return caPromise;
}

async function createCA(): Promise<TestCA> {
  const caKeys = await newKeyPair();
  const caCert = pki.createCertificate();
  caCert.publicKey = caKeys.publicKey;
  caCert.serialNumber = serial();
  validity(caCert);
  const caSubject = [
    { name: 'commonName', value: 'Portcullis Test CA' },
    { name: 'organizationName', value: 'Portcullis tests' },
  ];
  caCert.setSubject(caSubject);
  caCert.setIssuer(caSubject);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(caKeys.key, md.sha256.create());
  const caPem = pki.certificateToPem(caCert);

  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ca-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, caPem);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

  const caSki = caCert.generateSubjectKeyIdentifier().getBytes();

  async function sign(subject: forge.pki.CertificateField[], extensions: object[]): Promise<IssuedCert> {
    const keys = await newKeyPair();
    const cert = pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serial();
    validity(cert);
    cert.setSubject(subject);
    cert.setIssuer(caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caSki },
      ...extensions,
    ]);
    cert.sign(caKeys.key, md.sha256.create());
    return { keyPem: keys.keyPem, certPem: pki.certificateToPem(cert) };
  }

  const issued = new Map<string, Promise<IssuedCert>>();

  return {
    caPem,
    caFile,
    issue(names: string[]): Promise<IssuedCert> {
      if (names.length === 0) throw new Error('issue(): at least one name');
      const cacheKey = 'server:' + [...names].sort().join(',');
      let p = issued.get(cacheKey);
      if (p === undefined) {
        const altNames = names.map((n) => (isIP(n) !== 0 ? { type: 7, ip: n } : { type: 2, value: n }));
        p = sign(
          [{ name: 'commonName', value: names[0]! }],
          [
            { name: 'extKeyUsage', serverAuth: true },
            { name: 'subjectAltName', altNames },
          ],
        );
        issued.set(cacheKey, p);
      }
      return p;
    },
    issueClient(subject: ClientCertSubject): Promise<IssuedCert> {
      const cacheKey = 'client:' + JSON.stringify(subject);
      let p = issued.get(cacheKey);
      if (p === undefined) {
        const fields: forge.pki.CertificateField[] = [];
        if (subject.organization !== undefined) fields.push({ name: 'organizationName', value: subject.organization });
        if (subject.organizationalUnit !== undefined) {
          fields.push({ name: 'organizationalUnitName', value: subject.organizationalUnit });
        }
        for (const cn of subject.commonNames) fields.push({ name: 'commonName', value: cn });
        p = sign(fields, [{ name: 'extKeyUsage', clientAuth: true }]);
        issued.set(cacheKey, p);
      }
      return p;
    },
  };
}

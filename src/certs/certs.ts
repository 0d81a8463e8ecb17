/**
 * A private CA and the certificates it issues (node-forge builds and signs them; node:crypto makes
 * the RSA 2048 keys, natively, about 50 ms each instead of forge's seconds), and what a certificate
 * file holds. Used by `portcullis cert` and by the tests' certificate helper.
 */
import { X509Certificate, generateKeyPair, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';

const { pki, md } = forge;
const generateKeyPairAsync = promisify(generateKeyPair);

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export interface SubjectSpec {
  /** In order, e.g. [workspaceId, agentGuid] for an agent-style `CN=<ws>, CN=<agent>`. */
  commonNames: string[];
  organizationalUnit?: string;
  organization?: string;
}

export interface Validity {
  days: number;
  /** notBefore this long before now (clock skew between machines). Default 5 minutes. */
  backdateMs?: number;
}

const DAY_MS = 24 * 3600 * 1000;

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
  return { keyPem: privateKey, key, publicKey: pki.setRsaPublicKey(key.n, key.e) };
}

function serial(): string {
  // 16 random bytes, top bit clear: a positive serial as RFC 5280 wants.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

function setValidity(cert: forge.pki.Certificate, v: Validity): void {
  const now = Date.now();
  cert.validity.notBefore = new Date(now - (v.backdateMs ?? 5 * 60 * 1000));
  cert.validity.notAfter = new Date(now + v.days * DAY_MS);
}

function subjectFields(s: SubjectSpec): forge.pki.CertificateField[] {
  // Certificate order is most general first; tools print it reversed (CN first).
  const fields: forge.pki.CertificateField[] = [];
  if (s.organization !== undefined) fields.push({ name: 'organizationName', value: s.organization });
  if (s.organizationalUnit !== undefined) fields.push({ name: 'organizationalUnitName', value: s.organizationalUnit });
  for (const cn of s.commonNames) fields.push({ name: 'commonName', value: cn });
  return fields;
}

/** A self-signed CA certificate (basicConstraints cA, keyCertSign) and its key. */
export async function createCa(subject: SubjectSpec, validity: Validity): Promise<KeyAndCert> {
  const keys = await newKeyPair();
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  setValidity(cert, validity);
  const fields = subjectFields(subject);
  cert.setSubject(fields);
  cert.setIssuer(fields);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.key, md.sha256.create());
  return { keyPem: keys.keyPem, certPem: pki.certificateToPem(cert) };
}

export interface IssueOptions {
  kind: 'server' | 'client';
  subject: SubjectSpec;
  /** Subject alternative names (server certificates): DNS names and IP addresses. */
  names?: string[];
  validity: Validity;
}

/** A leaf certificate signed by `ca`: serverAuth with SANs, or clientAuth. */
export async function issueCertificate(ca: KeyAndCert, opts: IssueOptions): Promise<KeyAndCert> {
  const caCert = pki.certificateFromPem(ca.certPem);
  const caKey = pki.privateKeyFromPem(ca.keyPem);
  const keys = await newKeyPair();
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  setValidity(cert, opts.validity);
  cert.setSubject(subjectFields(opts.subject));
  cert.setIssuer(caCert.subject.attributes);
  const names = opts.names ?? [];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    opts.kind === 'server' ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
    ...(names.length > 0 ? [{ name: 'subjectAltName', altNames: names.map((n) => (isIP(n) !== 0 ? { type: 7, ip: n } : { type: 2, value: n })) }] : []),
  ]);
  cert.sign(caKey, md.sha256.create());
  return { keyPem: keys.keyPem, certPem: pki.certificateToPem(cert) };
}

export interface CertificateFacts {
  /** Most specific first, as clients.certificates.subjects takes it: `CN=client1, OU=ops, O=Example`. */
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  /** `DNS:name`, `IP Address:1.2.3.4`, as openssl prints them. */
  subjectAltNames: string[];
  /** Colon-separated upper-case hex, as openssl x509 -fingerprint -sha256 prints it. */
  sha256: string;
  isCa: boolean;
}

function oneLine(x509Name: string): string {
  return x509Name
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .map((l) => {
      // A comma inside a value is escaped, as clients.certificates.subjects reads it.
      const eq = l.indexOf('=');
      return eq < 0 ? l : l.slice(0, eq + 1) + l.slice(eq + 1).replace(/([,+\\])/g, '\\$1');
    })
    .join(', ');
}

/** What the first certificate in a PEM text holds. Throws when there is none. */
export function describeCertificate(pem: string): CertificateFacts {
  const x = new X509Certificate(pem);
  return {
    subject: oneLine(x.subject),
    issuer: oneLine(x.issuer),
    notBefore: new Date(x.validFrom).toISOString(),
    notAfter: new Date(x.validTo).toISOString(),
    subjectAltNames: x.subjectAltName === undefined ? [] : x.subjectAltName.split(', '),
    sha256: x.fingerprint256,
    isCa: x.ca,
  };
}

/**
 * Client-certificate subjects and thumbprints as the allowlists (clients.certificates,
 * clients.groups[].subjects) compare them. Shared by the TLS proxy listener and anything else that
 * sees a client certificate.
 */
import { normaliseSubject, normaliseThumbprint as normaliseHex } from '../tls/index.js';

/**
 * The key two subjects are compared by: the one canonical form of src/tls/subject.ts (attribute
 * order, spacing and case do not matter), so the TLS proxy listener, the groups and the tunnel
 * peek all compare a subject the same way. Null for text that is not a subject (it matches nothing).
 */
export function subjectKey(text: string): string | null {
  const key = normaliseSubject(text);
  return key === '' ? null : key;
}

/** 64 lower-case hex digits, from either `AB:CD:...` or plain hex; null otherwise. */
export function normaliseThumbprint(text: string): string | null {
  const hex = normaliseHex(text);
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}

/**
 * node:crypto's X509Certificate.subject (one attribute per line, in certificate order) as the
 * one-line, most-specific-first form operators write: `CN=client1, OU=ops, O=Example`.
 */
export function displaySubject(x509Subject: string): string {
  const lines = x509Subject.split('\n').filter((l) => l !== '');
  return lines
    .reverse()
    .map((l) => {
      const eq = l.indexOf('=');
      return eq < 0 ? l : `${l.slice(0, eq)}=${l.slice(eq + 1).replace(/([,+\\])/g, '\\$1')}`;
    })
    .join(', ');
}

export interface CertificateAllowlist {
  /** Both lists empty: no check. */
  readonly active: boolean;
  /** The certificate is listed by subject or by SHA-256 thumbprint. */
  allows(subject: string, thumbprintSha256: string): boolean;
}

export function compileCertificateAllowlist(certs: { subjects: readonly string[]; thumbprintsSha256: readonly string[] }): CertificateAllowlist {
  const subjects = new Set(certs.subjects.map(subjectKey).filter((k): k is string => k !== null));
  const thumbprints = new Set(certs.thumbprintsSha256.map(normaliseThumbprint).filter((k): k is string => k !== null));
  const active = certs.subjects.length > 0 || certs.thumbprintsSha256.length > 0;
  return {
    active,
    allows(subject: string, thumbprintSha256: string): boolean {
      if (!active) return true;
      const t = normaliseThumbprint(thumbprintSha256);
      if (t !== null && thumbprints.has(t)) return true;
      const k = subjectKey(subject);
      return k !== null && subjects.has(k);
    },
  };
}

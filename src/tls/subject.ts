/**
 * Client-certificate allowlist (clients.certificates): subjects and SHA-256 thumbprints, as the
 * Log Analytics gateway's Add-OMSGatewayAllowedClientCertificate keeps them.
 *
 * Subject format: attribute=value pairs, written the way any common tool prints them:
 * RFC 4514 / Windows (`CN=ws, CN=agent, OU=Microsoft Monitoring Agent, O=Microsoft`), Node's and
 * OpenSSL's multi-line form (one pair per line, leaf last), or OpenSSL's one-line form
 * (`/O=Microsoft/OU=.../CN=agent/CN=ws`). Two subjects are the same when they hold the same
 * attributes: the order of the pairs, spacing around separators, runs of spaces inside a value,
 * and letter case (names and values) do not matter; `S` and `ST`, `E` and `emailAddress` are one.
 * Values that contain a separator (`,` `;` or a line break; `/` in the one-line form) cannot be
 * written; list such a certificate by thumbprint.
 */
import { X509Certificate, createHash } from 'node:crypto';

const ALIASES: Readonly<Record<string, string>> = { S: 'ST', E: 'EMAILADDRESS', EMAIL: 'EMAILADDRESS' };

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** The canonical form of a subject (see the file comment); '' when it holds no attribute=value pair. */
export function normaliseSubject(subject: string): string {
  const s = subject.trim();
  const parts = s.startsWith('/') ? s.split('/') : s.split(/[,;\n]|\s\+\s/);
  const pairs: string[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) {
      if (part.trim() !== '') return '';
      continue;
    }
    const name = part.slice(0, eq).trim().toUpperCase();
    const value = unquote(part.slice(eq + 1).trim())
      .replace(/\s+/g, ' ')
      .toLowerCase();
    pairs.push(`${ALIASES[name] ?? name}=${value}`);
  }
  return pairs.sort().join(', ');
}

/** 64 lower-case hex digits (colons and case as typed are ignored). */
export function normaliseThumbprint(t: string): string {
  return t.replace(/:/g, '').toLowerCase();
}

export interface CertificateIdentity {
  /** As Node prints it (DER order, one pair per line), for logs. */
  readonly subject: string;
  /** SHA-256 of the DER, lower-case hex. */
  readonly thumbprint: string;
}

/** Subject and thumbprint of a DER certificate; null when it does not parse. */
export function certificateIdentity(der: Buffer): CertificateIdentity | null {
  const thumbprint = createHash('sha256').update(der).digest('hex');
  try {
    const subject = new X509Certificate(der).subject;
    return { subject: subject.replace(/\n/g, ', '), thumbprint };
  } catch {
    return null;
  }
}

export interface CertificateAllowlist {
  /** No subject and no thumbprint listed: no check. */
  readonly empty: boolean;
  allows(id: CertificateIdentity): boolean;
}

export function compileCertificateAllowlist(list: { subjects: readonly string[]; thumbprintsSha256: readonly string[] }): CertificateAllowlist {
  const subjects = new Set(list.subjects.map(normaliseSubject).filter((s) => s !== ''));
  const thumbprints = new Set(list.thumbprintsSha256.map(normaliseThumbprint));
  return Object.freeze({
    empty: subjects.size === 0 && thumbprints.size === 0,
    allows: (id: CertificateIdentity) => thumbprints.has(id.thumbprint) || subjects.has(normaliseSubject(id.subject)),
  });
}

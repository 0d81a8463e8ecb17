/**
 * Client-certificate subjects and thumbprints as the allowlists (clients.certificates,
 * clients.groups[].subjects) compare them. Shared by the TLS proxy listener and anything else that
 * sees a client certificate.
 */

/** One `TYPE=value` attribute of a distinguished name. */
interface Attribute {
  readonly type: string;
  readonly value: string;
}

/**
 * Split an RFC 4514-style subject (`CN=a, OU=b, O=c`; `\,` escapes a comma) or the one-per-line
 * form node:crypto's X509Certificate.subject gives into attributes; null when it is not one.
 */
export function parseSubject(text: string): Attribute[] | null {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '\\' && i + 1 < text.length) {
      cur += text[++i] ?? '';
    } else if (c === ',' || c === '\n' || c === '+') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  const out: Attribute[] = [];
  for (const raw of parts) {
    const part = raw.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    out.push({ type: part.slice(0, eq).trim().toUpperCase(), value: part.slice(eq + 1).trim() });
  }
  return out.length === 0 ? null : out;
}

/**
 * The key two subjects are compared by: attributes lower-cased and sorted, so the order a tool
 * prints them in (certificate order, or most specific first as Windows shows them) does not matter.
 * Null for text that is not a subject (it then matches nothing).
 */
export function subjectKey(text: string): string | null {
  const attrs = parseSubject(text);
  if (attrs === null) return null;
  return attrs
    .map((a) => `${a.type}=${a.value.toLowerCase()}`)
    .sort()
    .join('\u0000');
}

/** 64 lower-case hex digits, from either `AB:CD:...` or plain hex; null otherwise. */
export function normaliseThumbprint(text: string): string | null {
  const hex = text.replace(/:/g, '').toLowerCase();
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

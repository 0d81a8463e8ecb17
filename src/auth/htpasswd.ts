/**
 * htpasswd files as Squid's basic_ncsa_auth reads them: `user:hash` lines, `#` comments. Schemes:
 * bcrypt ($2y$, $2a$, $2b$; bcryptjs, pure JS), Apache MD5 ($apr1$) and {SHA} (node:crypto).
 * crypt(3) DES and the glibc $5$/$6$ schemes are not supported: such entries never verify, and the
 * loader says which lines it skipped.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

export type HashScheme = 'bcrypt' | 'apr1' | 'sha1';

export interface HtpasswdEntry {
  readonly user: string;
  readonly scheme: HashScheme;
  readonly hash: string;
}

export interface ParsedHtpasswd {
  readonly users: ReadonlyMap<string, HtpasswdEntry>;
  /** Lines skipped, by 1-based number, with why (no hash or password text ever). */
  readonly skipped: ReadonlyArray<{ line: number; why: string }>;
}

export function schemeOf(hash: string): HashScheme | null {
  if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return 'bcrypt';
  if (hash.startsWith('$apr1$')) return 'apr1';
  if (hash.startsWith('{SHA}')) return 'sha1';
  return null;
}

export function parseHtpasswd(text: string): ParsedHtpasswd {
  const users = new Map<string, HtpasswdEntry>();
  const skipped: Array<{ line: number; why: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) return skipped.push({ line: i + 1, why: 'not user:hash' });
    const user = line.slice(0, colon);
    // Apache's htdigest-style trailing fields are not ours; the hash ends at the next colon.
    const rest = line.slice(colon + 1);
    const hash = rest.includes(':') ? rest.slice(0, rest.indexOf(':')) : rest;
    const scheme = schemeOf(hash);
    if (scheme === null) return skipped.push({ line: i + 1, why: `user ${user}: unsupported hash scheme (bcrypt, $apr1$ and {SHA} are supported)` });
    if (users.has(user)) return skipped.push({ line: i + 1, why: `user ${user}: listed again (the first entry counts)` });
    users.set(user, { user, scheme, hash });
  });
  return { users, skipped };
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Does `password` match this entry? bcrypt runs asynchronously (bcryptjs yields between rounds). */
export async function verifyEntry(entry: HtpasswdEntry, password: string): Promise<boolean> {
  switch (entry.scheme) {
    case 'bcrypt':
      return bcrypt.compare(password, entry.hash);
    case 'sha1':
      return equal('{SHA}' + createHash('sha1').update(password, 'utf8').digest('base64'), entry.hash);
    case 'apr1': {
      const salt = entry.hash.slice(6).split('$')[0] ?? '';
      return equal(apr1(password, salt), entry.hash);
    }
  }
}

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function to64(v: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += ITOA64[v & 0x3f];
    v >>>= 6;
  }
  return s;
}

/** Apache's MD5-crypt variant ($apr1$): Poul-Henning Kamp's md5crypt with "$apr1$" as the magic. */
export function apr1(password: string, rawSalt: string): string {
  const magic = '$apr1$';
  const salt = rawSalt.slice(0, 8);
  const pw = Buffer.from(password, 'utf8');
  const md5 = (...parts: Array<Buffer | string>): Buffer => {
    const h = createHash('md5');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  let final = md5(pw, salt, pw);
  const ctx: Array<Buffer | string> = [pw, magic, salt];
  for (let len = pw.length; len > 0; len -= 16) ctx.push(final.subarray(0, Math.min(16, len)));
  for (let i = pw.length; i > 0; i >>>= 1) ctx.push(i & 1 ? Buffer.from([0]) : pw.subarray(0, 1));
  final = md5(...ctx);
  for (let i = 0; i < 1000; i++) {
    const parts: Array<Buffer | string> = [];
    parts.push(i & 1 ? pw : final);
    if (i % 3) parts.push(salt);
    if (i % 7) parts.push(pw);
    parts.push(i & 1 ? final : pw);
    final = md5(...parts);
  }
  const f = (i: number): number => final[i] ?? 0;
  const out =
    to64((f(0) << 16) | (f(6) << 8) | f(12), 4) +
    to64((f(1) << 16) | (f(7) << 8) | f(13), 4) +
    to64((f(2) << 16) | (f(8) << 8) | f(14), 4) +
    to64((f(3) << 16) | (f(9) << 8) | f(15), 4) +
    to64((f(4) << 16) | (f(10) << 8) | f(5), 4) +
    to64(f(11), 2);
  return magic + salt + '$' + out;
}

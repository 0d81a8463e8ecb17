/**
 * Proxy Basic authentication for one data-plane process: the htpasswd file (re-read on reload and
 * when it changes), a cache of successful verifications (bcrypt is slow by design), and a limit on
 * failed attempts per client address so a client cannot make the gateway burn its CPU on bcrypt.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PortcullisError, errorMessage } from '../util/errors.js';
import { parseHtpasswd, verifyEntry, type HtpasswdEntry, type ParsedHtpasswd } from './htpasswd.js';

export interface AuthSettings {
  htpasswdFile: string;
  realm: string;
  maxFailuresPerMinute: number;
  cacheTtlMs: number;
}

export type AuthResult =
  | { readonly ok: true; readonly user: string }
  /** missing: no (Basic) credentials; failed: wrong user or password; limited: too many failures from this address. */
  | { readonly ok: false; readonly why: 'missing' | 'failed' | 'limited'; readonly user?: string; readonly userKnown?: boolean };

/** Successful verifications remembered at most (the oldest is dropped first). */
const CACHE_MAX = 4096;
/** Client addresses whose failures are counted at most; past it the oldest window is dropped. */
const FAILURE_TRACK_MAX = 10_000;
const WINDOW_MS = 60_000;
/** How often a cache miss may stat the file to see whether it changed. */
const STAT_EVERY_MS = 2_000;

/** `Basic <base64(user:password)>` → user and password; null for anything else. */
export function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (header === undefined) return null;
  const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null || m[1] === undefined) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

interface FileState {
  parsed: ParsedHtpasswd;
  mtimeMs: number;
  size: number;
  ino: number;
}

function readHtpasswd(file: string): FileState {
  let text: string;
  let st;
  try {
    st = statSync(file);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PortcullisError('PCL_ERR_PROXY_AUTH_FILE', `cannot read proxy.auth.htpasswdFile ${file}: ${errorMessage(err)}`);
  }
  return { parsed: parseHtpasswd(text), mtimeMs: st.mtimeMs, size: st.size, ino: st.ino };
}

export class Authenticator {
  private settings: AuthSettings;
  private file: FileState;
  private lastStat = 0;
  /** sha256(user \0 password) → user and expiry. Never the password itself. */
  private readonly cache = new Map<string, { user: string; until: number }>();
  private readonly failures = new Map<string, { count: number; since: number }>();

  /** Reads the file now: throws PCL_ERR_PROXY_AUTH_FILE when it cannot. */
  constructor(
    settings: AuthSettings,
    private readonly onFileLoaded: (info: { file: string; users: number; skipped: ReadonlyArray<{ line: number; why: string }> }) => void = () => {},
  ) {
    this.settings = settings;
    this.file = readHtpasswd(settings.htpasswdFile);
    this.announce();
  }

  get realm(): string {
    return this.settings.realm;
  }

  /** New settings (a reload): the file is read again and the cache emptied, so a removed user is out at once. */
  reconfigure(settings: AuthSettings): void {
    const file = readHtpasswd(settings.htpasswdFile);
    this.settings = settings;
    this.file = file;
    this.cache.clear();
    this.announce();
  }

  async check(header: string | undefined, client: string, now = Date.now()): Promise<AuthResult> {
    const creds = parseBasic(header);
    if (creds === null) return { ok: false, why: 'missing' };
    const key = createHash('sha256').update(creds.user).update('\0').update(creds.password).digest('base64');
    const hit = this.cache.get(key);
    if (hit !== undefined && hit.until > now) return { ok: true, user: hit.user };
    if (hit !== undefined) this.cache.delete(key);
    if (this.limited(client, now)) return { ok: false, why: 'limited', user: creds.user };
    this.refreshIfChanged(now);
    const entry: HtpasswdEntry | undefined = this.file.parsed.users.get(creds.user);
    const ok = entry !== undefined && (await verifyEntry(entry, creds.password));
    if (!ok) {
      this.noteFailure(client, now);
      return { ok: false, why: 'failed', user: creds.user, userKnown: entry !== undefined };
    }
    if (this.settings.cacheTtlMs > 0) {
      if (this.cache.size >= CACHE_MAX) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
      this.cache.set(key, { user: creds.user, until: now + this.settings.cacheTtlMs });
    }
    return { ok: true, user: creds.user };
  }

  private limited(client: string, now: number): boolean {
    const max = this.settings.maxFailuresPerMinute;
    if (max === 0) return false;
    const f = this.failures.get(client);
    if (f === undefined) return false;
    if (now - f.since >= WINDOW_MS) {
      this.failures.delete(client);
      return false;
    }
    return f.count >= max;
  }

  private noteFailure(client: string, now: number): void {
    if (this.settings.maxFailuresPerMinute === 0) return;
    const f = this.failures.get(client);
    if (f !== undefined && now - f.since < WINDOW_MS) {
      f.count++;
      return;
    }
    if (f !== undefined) this.failures.delete(client);
    if (this.failures.size >= FAILURE_TRACK_MAX) {
      for (const [ip, v] of this.failures) {
        if (now - v.since >= WINDOW_MS || this.failures.size >= FAILURE_TRACK_MAX) this.failures.delete(ip);
        if (this.failures.size < FAILURE_TRACK_MAX / 2) break;
      }
    }
    this.failures.set(client, { count: 1, since: now });
  }

  /** An edited file applies without a reload: checked on cache misses, at most every STAT_EVERY_MS. */
  private refreshIfChanged(now: number): void {
    if (now - this.lastStat < STAT_EVERY_MS) return;
    this.lastStat = now;
    try {
      const st = statSync(this.settings.htpasswdFile);
      if (st.mtimeMs === this.file.mtimeMs && st.size === this.file.size && st.ino === this.file.ino) return;
      this.file = readHtpasswd(this.settings.htpasswdFile);
      this.cache.clear();
      this.announce();
    } catch {
      // Gone or unreadable for a moment (an editor's rename): keep the users we have.
    }
  }

  private announce(): void {
    this.onFileLoaded({ file: this.settings.htpasswdFile, users: this.file.parsed.users.size, skipped: this.file.parsed.skipped });
  }
}

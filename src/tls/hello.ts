/**
 * The cleartext handshake messages the gateway reads (RFC 8446 §4.1.2-4.1.3, RFC 5246 §7.4): the
 * ClientHello (SNI, versions offered), the ServerHello (version chosen) and, in TLS 1.2 only, the
 * client's Certificate message. Every parser returns null on malformed input; none throws.
 */
import { isGrease } from './versions.js';

export const HS_CLIENT_HELLO = 1;
export const HS_SERVER_HELLO = 2;
export const HS_CERTIFICATE = 11;
export const HS_CERTIFICATE_REQUEST = 13;
export const HS_SERVER_HELLO_DONE = 14;

const EXT_SERVER_NAME = 0;
const EXT_SUPPORTED_VERSIONS = 43;

/** A bounds-checked reader: every read past the end returns null. */
class Cursor {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  u8(): number | null {
    if (this.left < 1) return null;
    return this.buf[this.pos++] ?? null;
  }
  u16(): number | null {
    if (this.left < 2) return null;
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number | null {
    if (this.left < 3) return null;
    const v = this.buf.readUIntBE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  bytes(n: number): Buffer | null {
    if (n < 0 || this.left < n) return null;
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** A length-prefixed vector (prefix of 1, 2 or 3 bytes). */
  vector(prefix: 1 | 2 | 3): Buffer | null {
    const n = prefix === 1 ? this.u8() : prefix === 2 ? this.u16() : this.u24();
    return n === null ? null : this.bytes(n);
  }
}

export interface ClientHello {
  /** legacy_version (0x0303 for TLS 1.2 and 1.3 clients). */
  readonly legacyVersion: number;
  /** Versions offered, highest first, GREASE left out: supported_versions, or up to legacy_version without it. */
  readonly versions: readonly number[];
  /** The host_name of server_name, lower case, without a root dot; null when absent. */
  readonly sni: string | null;
}

/** Extensions as [type, data] pairs; null when the block is malformed. */
function extensions(c: Cursor): Array<[number, Buffer]> | null {
  if (c.left === 0) return [];
  const block = c.vector(2);
  if (block === null || c.left !== 0) return null;
  const e = new Cursor(block);
  const out: Array<[number, Buffer]> = [];
  while (e.left > 0) {
    const type = e.u16();
    const data = e.vector(2);
    if (type === null || data === null) return null;
    out.push([type, data]);
  }
  return out;
}

/** RFC 6066 §3: the host_name entry; a name that is not printable ASCII is malformed. */
function serverName(data: Buffer): string | null | undefined {
  const c = new Cursor(data);
  const list = c.vector(2);
  if (list === null || c.left !== 0) return undefined;
  const l = new Cursor(list);
  while (l.left > 0) {
    const type = l.u8();
    const name = l.vector(2);
    if (type === null || name === null) return undefined;
    if (type !== 0) continue;
    if (name.length === 0 || name.some((b) => b <= 0x20 || b >= 0x7f)) return undefined;
    const host = name.toString('latin1').toLowerCase();
    return host.endsWith('.') ? host.slice(0, -1) : host;
  }
  return null;
}

/** Every version from SSL 3.0 up to `legacy`: what a client without supported_versions offers. */
function versionsUpTo(legacy: number): number[] {
  const out: number[] = [];
  for (let v = Math.min(legacy, 0x0303); v >= 0x0300; v--) out.push(v);
  return out;
}

export function parseClientHello(body: Buffer): ClientHello | null {
  const c = new Cursor(body);
  const legacyVersion = c.u16();
  if (legacyVersion === null || c.bytes(32) === null) return null;
  const sessionId = c.vector(1);
  const suites = c.vector(2);
  const compression = c.vector(1);
  if (sessionId === null || sessionId.length > 32 || suites === null || suites.length < 2 || suites.length % 2 !== 0) return null;
  if (compression === null || compression.length < 1) return null;
  const exts = extensions(c);
  if (exts === null) return null;
  let sni: string | null = null;
  let versions: number[] | null = null;
  const seen = new Set<number>();
  for (const [type, data] of exts) {
    // RFC 8446 §4.2: an extension type appears at most once.
    if (seen.has(type)) return null;
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = serverName(data);
      if (name === undefined) return null;
      sni = name;
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      const d = new Cursor(data);
      const list = d.vector(1);
      if (list === null || d.left !== 0 || list.length < 2 || list.length % 2 !== 0) return null;
      versions = [];
      for (let i = 0; i < list.length; i += 2) {
        const v = list.readUInt16BE(i);
        if (!isGrease(v)) versions.push(v);
      }
    }
  }
  versions ??= versionsUpTo(legacyVersion);
  versions.sort((a, b) => b - a);
  return { legacyVersion, versions, sni };
}

export interface ServerHello {
  /** The version the server chose: supported_versions when present (TLS 1.3), else legacy_version. */
  readonly version: number;
}

export function parseServerHello(body: Buffer): ServerHello | null {
  const c = new Cursor(body);
  const legacyVersion = c.u16();
  if (legacyVersion === null || c.bytes(32) === null) return null;
  const sessionId = c.vector(1);
  if (sessionId === null || c.u16() === null || c.u8() === null) return null;
  const exts = extensions(c);
  if (exts === null) return null;
  for (const [type, data] of exts) {
    if (type === EXT_SUPPORTED_VERSIONS && data.length === 2) return { version: data.readUInt16BE(0) };
  }
  return { version: legacyVersion };
}

/** TLS 1.2 Certificate message: the DER certificates, leaf first (empty: the client sent none). */
export function parseCertificateList(body: Buffer): Buffer[] | null {
  const c = new Cursor(body);
  const list = c.vector(3);
  if (list === null || c.left !== 0) return null;
  const l = new Cursor(list);
  const out: Buffer[] = [];
  while (l.left > 0) {
    const der = l.vector(3);
    if (der === null || der.length === 0) return null;
    out.push(der);
  }
  return out;
}

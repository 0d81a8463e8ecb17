/**
 * TLS handshake bytes for tests, built by hand (RFC 8446 §4.1.2): a ClientHello with a chosen
 * SNI, versions and extensions, cut into records of a chosen size.
 */
import { randomBytes } from 'node:crypto';

export const TLS12 = 0x0303;
export const TLS13 = 0x0304;

export interface HelloSpec {
  /** server_name host_name; null/absent = no SNI extension. */
  sni?: string | null;
  /** supported_versions list (GREASE values may be mixed in); absent = no such extension. */
  versions?: number[];
  /** legacy_version (default 0x0303). */
  legacyVersion?: number;
  /** More extensions, [type, data], placed before the ones above. */
  extra?: Array<[number, Buffer]>;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

function vec16(b: Buffer): Buffer {
  return Buffer.concat([u16(b.length), b]);
}

export function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(data)]);
}

export function clientHelloBody(spec: HelloSpec = {}): Buffer {
  const exts: Buffer[] = (spec.extra ?? []).map(([t, d]) => extension(t, d));
  if (spec.sni !== undefined && spec.sni !== null) {
    const name = Buffer.from(spec.sni, 'latin1');
    exts.push(extension(0, vec16(Buffer.concat([Buffer.from([0]), vec16(name)]))));
  }
  if (spec.versions !== undefined) {
    const list = Buffer.concat(spec.versions.map(u16));
    exts.push(extension(43, Buffer.concat([Buffer.from([list.length]), list])));
  }
  const sessionId = randomBytes(32);
  return Buffer.concat([
    u16(spec.legacyVersion ?? TLS12),
    randomBytes(32),
    Buffer.from([sessionId.length]),
    sessionId,
    vec16(Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f])),
    Buffer.from([1, 0]),
    vec16(Buffer.concat(exts)),
  ]);
}

/** A handshake message: type, 24-bit length, body. */
export function handshake(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), u24(body.length), body]);
}

/** `payload` as records of `contentType`, each fragment at most `fragment` bytes. */
export function records(contentType: number, payload: Buffer, fragment = 16384, version = 0x0301): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < payload.length; i += fragment) {
    const f = payload.subarray(i, Math.min(payload.length, i + fragment));
    out.push(Buffer.concat([Buffer.from([contentType]), u16(version), u16(f.length), f]));
  }
  return Buffer.concat(out);
}

/** A whole ClientHello as it goes on the wire (default: SNI absent, TLS 1.3 and 1.2 offered). */
export function clientHello(spec: HelloSpec = { versions: [TLS13, TLS12] }, fragment = 16384): Buffer {
  return records(22, handshake(1, clientHelloBody(spec)), fragment);
}
